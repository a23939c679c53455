/* SPDX-License-Identifier: MIT */
/*
 * Address syntax (RFC 5321 section 4.1.2, RFC 6531) and normalization: the
 * local part keeps its case, the domain is lowercased and an IDN domain is
 * converted to its A-label with libidn2. Address literals are not supported.
 * The checks run in a fixed order, so each input gets one stable error.
 */
#include "address.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <idn2.h>

#include "utf8.h"

struct address_error_text {
    const char *name;
    const char *sentence;
};

static const struct address_error_text address_errors[] = {
    [ADDRESS_OK] = {"ok", "is valid"},
    [ADDRESS_EMPTY] = {"empty", "is empty"},
    [ADDRESS_TOO_LONG] = {"too_long", "is longer than 254 octets"},
    [ADDRESS_CONTROL_CHAR] = {"control_char",
                              "contains a control character (CR, LF, NUL "
                              "or another)"},
    [ADDRESS_BAD_UTF8] = {"bad_utf8", "is not valid UTF-8"},
    [ADDRESS_SPACE] = {"space", "contains a space outside quotes"},
    [ADDRESS_ANGLE_BRACKET] = {"angle_bracket",
                               "contains an angle bracket; submit the bare "
                               "address without < and >"},
    [ADDRESS_NO_AT] = {"no_at", "has no @ between local part and domain"},
    [ADDRESS_MANY_AT] = {"many_at", "contains more than one @ outside quotes"},
    [ADDRESS_LOCAL_EMPTY] = {"local_empty", "has an empty local part"},
    [ADDRESS_LOCAL_TOO_LONG] = {"local_too_long",
                                "has a local part longer than 64 octets"},
    [ADDRESS_LOCAL_DOT] = {"local_dot",
                           "has a local part that starts or ends with a dot "
                           "or has two dots in a row"},
    [ADDRESS_LOCAL_CHAR] = {"local_char",
                            "has a local part with a character that is only "
                            "allowed inside quotes"},
    [ADDRESS_QUOTE_UNCLOSED] = {"quote_unclosed",
                                "has a quoted local part without its closing "
                                "quote"},
    [ADDRESS_QUOTE_CHAR] = {"quote_char",
                            "has a quoted local part with a character that "
                            "is not allowed there"},
    [ADDRESS_DOMAIN_EMPTY] = {"domain_empty", "has an empty domain"},
    [ADDRESS_DOMAIN_LITERAL] = {"domain_literal",
                                "uses an address literal such as [192.0.2.1] "
                                "as its domain, which is not supported"},
    [ADDRESS_DOMAIN_TOO_LONG] = {"domain_too_long",
                                 "has a domain longer than 255 octets"},
    [ADDRESS_DOMAIN_DOT] = {"domain_dot",
                            "has a domain that starts or ends with a dot or "
                            "has two dots in a row"},
    [ADDRESS_DOMAIN_LABEL_TOO_LONG] = {"domain_label_too_long",
                                       "has a domain label longer than 63 "
                                       "octets"},
    [ADDRESS_DOMAIN_HYPHEN] = {"domain_hyphen",
                               "has a domain label that starts or ends with "
                               "a hyphen"},
    [ADDRESS_DOMAIN_CHAR] = {"domain_char",
                             "has a domain with a character other than "
                             "letters, digits, hyphens and dots"},
    [ADDRESS_DOMAIN_ONE_LABEL] = {"domain_one_label",
                                  "has a domain with a single label; a mail "
                                  "domain needs at least two"},
    [ADDRESS_DOMAIN_NUMERIC] = {"domain_numeric",
                                "has a domain whose last label is all digits, "
                                "like a bare IP address"},
    [ADDRESS_DOMAIN_IDN] = {"domain_idn", "has a domain that is not a valid "
                                          "internationalized domain name"},
};

_Static_assert(sizeof address_errors / sizeof address_errors[0] ==
                   ADDRESS_NERRORS,
               "address_errors must describe every address_error");

/*
 * UTS #46 non-transitional processing maps case and compatibility forms and
 * keeps the IDNA2008 meaning of deviation characters. So "faß.de" becomes
 * xn--fa-hia.de, the domain its owner registered, where transitional
 * processing would probe fass.de, a different domain. The libidn2 manual
 * recommends these two flags for compatibility with other software.
 * IDN2_USE_STD3_ASCII_RULES is left out because libidn2 2.3.3 then silently
 * drops characters such as '_' instead of failing. The LDH check that runs
 * on the result rejects such characters instead.
 */
#define ADDRESS_IDN_FLAGS (IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT)

static bool
is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    if (c >= '0' && c <= '9')
        return true;
    /* RFC 5322 section 3.2.3; RFC 6531 section 3.3 adds UTF-8 bytes. */
    if (c >= 0x80)
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

static unsigned char
ascii_lower(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A' + 'a');
    return c;
}

/*
 * Checks the whole input for control characters first, so that CR, LF or
 * NUL is reported as such wherever it sits and whatever else is wrong, and
 * then for UTF-8 that is not well formed. C1 controls (U+0080..U+009F)
 * count as control characters too.
 */
static enum address_error
check_bytes(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n;

    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F)
            return ADDRESS_CONTROL_CHAR;
    }

    for (size_t i = 0; i < len; i += n) {
        n = utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            return ADDRESS_BAD_UTF8;
        if (utf8_is_control(cp))
            return ADDRESS_CONTROL_CHAR;
    }
    return ADDRESS_OK;
}

/* Returns whether s is a dot-atom: atext runs separated by single dots. */
static bool
is_dot_atom(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (s[i - 1] == '.')
                return false;
        } else if (!is_atext((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool
has_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return true;
    }
    return false;
}

/* Classifies a byte that is not allowed in an unquoted local part. */
static enum address_error
local_char_error(unsigned char c)
{
    if (c == ' ')
        return ADDRESS_SPACE;
    if (c == '<' || c == '>')
        return ADDRESS_ANGLE_BRACKET;
    return ADDRESS_LOCAL_CHAR;
}

/*
 * Parses an unquoted (dot-atom) local part that ends at the first '@'.
 * Stores its length in *local_len.
 */
static enum address_error
parse_dot_atom(const char *s, size_t len, size_t *local_len)
{
    size_t i;

    for (i = 0; i < len && s[i] != '@'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (i == 0 || s[i - 1] == '.')
                return ADDRESS_LOCAL_DOT;
        } else if (!is_atext(c)) {
            return local_char_error(c);
        }
    }

    if (i == len)
        return ADDRESS_NO_AT;
    if (i == 0)
        return ADDRESS_LOCAL_EMPTY;
    if (s[i - 1] == '.')
        return ADDRESS_LOCAL_DOT;
    if (i > ADDRESS_LOCAL_MAX)
        return ADDRESS_LOCAL_TOO_LONG;

    *local_len = i;
    return ADDRESS_OK;
}

/*
 * Parses a quoted-string local part (RFC 5321 section 4.1.2: qtextSMTP and
 * quoted-pairSMTP, plus UTF-8 from RFC 6531) that starts at s[0] == '"'.
 * Stores the unescaped content in raw (ADDRESS_LOCAL_MAX + 1 bytes) and the
 * number of input bytes used, closing quote included, in *used.
 */
static enum address_error
parse_quoted(const char *s, size_t len, char *raw, size_t *raw_len,
             size_t *used)
{
    size_t n = 0;
    size_t i = 1;

    for (;;) {
        unsigned char c;

        if (i >= len)
            return ADDRESS_QUOTE_UNCLOSED;
        c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c == '\\') {
            i++;
            if (i >= len)
                return ADDRESS_QUOTE_UNCLOSED;
            c = (unsigned char)s[i];
            /* quoted-pairSMTP escapes only printable ASCII and space. */
            if (c < 0x20 || c > 0x7E)
                return ADDRESS_QUOTE_CHAR;
        }
        /* The unescaped form is never longer than any quoted form, so
         * running over here means every form is too long. */
        if (n == ADDRESS_LOCAL_MAX)
            return ADDRESS_LOCAL_TOO_LONG;
        raw[n++] = (char)c;
        i++;
    }

    raw[n] = '\0';
    *raw_len = n;
    *used = i + 1;
    return ADDRESS_OK;
}

/*
 * Writes the wire form of the unescaped local part raw into out. RFC 5321
 * section 4.1.2 treats all quoted forms as equivalent and asks senders to
 * use the minimum quoting possible. So a dot-atom goes out bare, and
 * anything else is quoted with only '"' and '\' escaped.
 */
static enum address_error
quote_local(const char *raw, size_t raw_len, char *out)
{
    size_t n = 0;

    if (is_dot_atom(raw, raw_len)) {
        memcpy(out, raw, raw_len);
        out[raw_len] = '\0';
        return ADDRESS_OK;
    }

    out[n++] = '"';
    for (size_t i = 0; i < raw_len; i++) {
        bool escape = raw[i] == '"' || raw[i] == '\\';

        if (n + (escape ? 2 : 1) + 1 > ADDRESS_LOCAL_MAX)
            return ADDRESS_LOCAL_TOO_LONG;
        if (escape)
            out[n++] = '\\';
        out[n++] = raw[i];
    }
    out[n++] = '"';
    out[n] = '\0';
    return ADDRESS_OK;
}

/*
 * Parses the local part at the start of s into out->local and sets
 * out->utf8_local. Stores the offset of the '@' that ends it in *at.
 */
static enum address_error
parse_local(const char *s, size_t len, struct address *out, size_t *at)
{
    char raw[ADDRESS_LOCAL_MAX + 1];
    size_t raw_len;
    size_t used;
    enum address_error err;

    if (s[0] != '"') {
        err = parse_dot_atom(s, len, &raw_len);
        if (err != ADDRESS_OK)
            return err;
        memcpy(out->local, s, raw_len);
        out->local[raw_len] = '\0';
        out->utf8_local = has_utf8(s, raw_len);
        *at = raw_len;
        return ADDRESS_OK;
    }

    err = parse_quoted(s, len, raw, &raw_len, &used);
    if (err != ADDRESS_OK)
        return err;
    if (used == len)
        return ADDRESS_NO_AT;
    if (s[used] != '@')
        return local_char_error((unsigned char)s[used]);
    /* The grammar allows "", but an empty string names no mailbox, so it
     * is rejected like an empty local part. */
    if (raw_len == 0)
        return ADDRESS_LOCAL_EMPTY;

    err = quote_local(raw, raw_len, out->local);
    if (err != ADDRESS_OK)
        return err;
    out->utf8_local = has_utf8(raw, raw_len);
    *at = used;
    return ADDRESS_OK;
}

/* Checks one label of an ASCII domain (RFC 1035 section 2.3.1, LDH). */
static enum address_error
check_label(const char *s, size_t len)
{
    if (len == 0)
        return ADDRESS_DOMAIN_DOT;
    if (len > ADDRESS_LABEL_MAX)
        return ADDRESS_DOMAIN_LABEL_TOO_LONG;

    for (size_t i = 0; i < len; i++) {
        if (!is_ldh((unsigned char)s[i]))
            return ADDRESS_DOMAIN_CHAR;
    }
    if (s[0] == '-' || s[len - 1] == '-')
        return ADDRESS_DOMAIN_HYPHEN;
    return ADDRESS_OK;
}

/* RFC 5890 section 2.3.2.1: an A-label starts with "xn--", in any case. */
static bool
is_alabel(const char *s, size_t len)
{
    return len >= 4 && ascii_lower((unsigned char)s[0]) == 'x' &&
           ascii_lower((unsigned char)s[1]) == 'n' && s[2] == '-' &&
           s[3] == '-';
}

static bool
is_all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/*
 * Checks an ASCII domain label by label and stores it lowercased in out
 * (ADDRESS_DOMAIN_MAX + 1 bytes). Stores whether a label is an A-label
 * ("xn--" prefix) in *has_alabel.
 */
static enum address_error
check_ascii_domain(const char *s, size_t len, char *out, bool *has_alabel)
{
    size_t start = 0;
    size_t last = 0;
    size_t labels = 0;
    enum address_error err;

    if (len > ADDRESS_DOMAIN_MAX)
        return ADDRESS_DOMAIN_TOO_LONG;

    *has_alabel = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        err = check_label(s + start, i - start);
        if (err != ADDRESS_OK)
            return err;
        if (is_alabel(s + start, i - start))
            *has_alabel = true;
        labels++;
        last = start;
        start = i + 1;
    }

    if (labels < 2)
        return ADDRESS_DOMAIN_ONE_LABEL;
    /* RFC 3696 section 2: a top-level domain is never all-numeric, and a
     * domain like 192.0.2.1 is an IP address given without brackets. */
    if (is_all_digits(s + last, len - last))
        return ADDRESS_DOMAIN_NUMERIC;

    for (size_t i = 0; i < len; i++)
        out[i] = (char)ascii_lower((unsigned char)s[i]);
    out[len] = '\0';
    return ADDRESS_OK;
}

/*
 * Converts a domain to its A-label form with libidn2 and stores the result
 * in out (ADDRESS_INPUT_MAX + 1 bytes). For an ASCII domain with "xn--"
 * labels this checks that the labels are valid Punycode.
 */
static enum address_error
idn_to_ascii(const char *s, size_t len, char *out)
{
    char in[ADDRESS_INPUT_MAX + 1];
    char *alabel = NULL;
    size_t n;
    int rc;

    /* check_bytes() has rejected NUL, so the copy is a proper C string. */
    memcpy(in, s, len);
    in[len] = '\0';

    rc = idn2_to_ascii_8z(in, &alabel, ADDRESS_IDN_FLAGS);
    if (rc != IDN2_OK)
        return ADDRESS_DOMAIN_IDN;

    n = strlen(alabel);
    if (n > ADDRESS_INPUT_MAX) {
        idn2_free(alabel);
        return ADDRESS_DOMAIN_TOO_LONG;
    }
    memcpy(out, alabel, n + 1);
    idn2_free(alabel);
    return ADDRESS_OK;
}

/* Classifies the bytes of the domain part that no domain form allows. */
static enum address_error
scan_domain(const char *s, size_t len, bool *utf8)
{
    *utf8 = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '@')
            return ADDRESS_MANY_AT;
        if (c == ' ')
            return ADDRESS_SPACE;
        if (c == '<' || c == '>')
            return ADDRESS_ANGLE_BRACKET;
        if (c >= 0x80)
            *utf8 = true;
    }
    return ADDRESS_OK;
}

/* Parses the domain part into out->domain. */
static enum address_error
parse_domain(const char *s, size_t len, struct address *out)
{
    char alabel[ADDRESS_INPUT_MAX + 1];
    bool utf8;
    bool has_alabel;
    enum address_error err;

    if (len == 0)
        return ADDRESS_DOMAIN_EMPTY;
    /* RFC 5321 section 4.1.3 address literals: probing a bare IP address
     * bypasses MX lookup, which this service is built around. */
    if (s[0] == '[')
        return ADDRESS_DOMAIN_LITERAL;
    err = scan_domain(s, len, &utf8);
    if (err != ADDRESS_OK)
        return err;

    if (!utf8) {
        err = check_ascii_domain(s, len, out->domain, &has_alabel);
        if (err != ADDRESS_OK || !has_alabel)
            return err;
        /* libidn2 only checks the A-labels here; the output is not kept. */
        return idn_to_ascii(out->domain, strlen(out->domain), alabel);
    }

    err = idn_to_ascii(s, len, alabel);
    if (err != ADDRESS_OK)
        return err;
    return check_ascii_domain(alabel, strlen(alabel), out->domain, &has_alabel);
}

enum address_error
address_parse(const char *input, size_t len, struct address *out)
{
    size_t at;
    int n;
    enum address_error err;

    memset(out, 0, sizeof *out);

    if (len == 0)
        return ADDRESS_EMPTY;
    if (len > ADDRESS_INPUT_MAX)
        return ADDRESS_TOO_LONG;
    err = check_bytes((const unsigned char *)input, len);
    if (err != ADDRESS_OK)
        goto fail;

    err = parse_local(input, len, out, &at);
    if (err != ADDRESS_OK)
        goto fail;
    err = parse_domain(input + at + 1, len - at - 1, out);
    if (err != ADDRESS_OK)
        goto fail;

    /* RFC 5321 section 4.5.3.1.3 bounds the path, not the parts alone. */
    n = snprintf(out->normalized, sizeof out->normalized, "%s@%s", out->local,
                 out->domain);
    if (n < 0 || (size_t)n > ADDRESS_MAX) {
        err = ADDRESS_TOO_LONG;
        goto fail;
    }
    return ADDRESS_OK;

fail:
    memset(out, 0, sizeof *out);
    return err;
}

const char *
address_error_str(enum address_error err)
{
    if ((unsigned)err >= ADDRESS_NERRORS)
        return "has an unknown problem";
    return address_errors[err].sentence;
}

const char *
address_error_name(enum address_error err)
{
    if ((unsigned)err >= ADDRESS_NERRORS)
        return "unknown";
    return address_errors[err].name;
}
