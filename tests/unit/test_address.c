/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for address_parse(): a table of valid and invalid addresses
 * with the expected error or normalized form, length limits built at run
 * time, and a randomized check that no accepted address carries a control
 * character.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "address.h"
#include "check.h"

/* A string literal and its length without the final NUL, so that cases can
 * contain NUL bytes. */
#define BYTES(s) s, sizeof(s) - 1

struct address_case {
    const char *input;
    size_t len;
    enum address_error err;
    const char *normalized; /* expected on ADDRESS_OK */
    bool utf8_local;
};

static const struct address_case cases[] = {
    /* Plain and normalized forms. */
    {BYTES("user@example.org"), ADDRESS_OK, "user@example.org", false},
    {BYTES("User.Name+tag@Example.ORG"), ADDRESS_OK,
     "User.Name+tag@example.org", false},
    {BYTES("USER@EXAMPLE.ORG"), ADDRESS_OK, "USER@example.org", false},
    {BYTES("a@b.co"), ADDRESS_OK, "a@b.co", false},
    {BYTES("!#$%&'*+-/=?^_`{|}~@example.org"), ADDRESS_OK,
     "!#$%&'*+-/=?^_`{|}~@example.org", false},
    {BYTES("x@sub.domain.example.org"), ADDRESS_OK, "x@sub.domain.example.org",
     false},
    {BYTES("x@a-b.example"), ADDRESS_OK, "x@a-b.example", false},
    {BYTES("x@123.example"), ADDRESS_OK, "x@123.example", false},
    {BYTES("x@example.xn--p1ai"), ADDRESS_OK, "x@example.xn--p1ai", false},

    /* Quoted local parts: kept quoted only when needed. */
    {BYTES("\"john doe\"@example.org"), ADDRESS_OK, "\"john doe\"@example.org",
     false},
    {BYTES("\"john.doe\"@example.org"), ADDRESS_OK, "john.doe@example.org",
     false},
    {BYTES("\"a\\\"b\"@example.org"), ADDRESS_OK, "\"a\\\"b\"@example.org",
     false},
    {BYTES("\"a\\b\"@example.org"), ADDRESS_OK, "ab@example.org", false},
    {BYTES("\"a\\\\b\"@example.org"), ADDRESS_OK, "\"a\\\\b\"@example.org",
     false},
    {BYTES("\"a@b\"@example.org"), ADDRESS_OK, "\"a@b\"@example.org", false},
    {BYTES("\"<a>\"@example.org"), ADDRESS_OK, "\"<a>\"@example.org", false},
    {BYTES("\"a..b\"@example.org"), ADDRESS_OK, "\"a..b\"@example.org", false},
    {BYTES("\"a\\ b\"@example.org"), ADDRESS_OK, "\"a b\"@example.org", false},

    /* UTF-8 local parts (RFC 6531) are flagged. */
    {BYTES("j\xc3\xb6rg@example.org"), ADDRESS_OK, "j\xc3\xb6rg@example.org",
     true},
    {BYTES("\xe7\x94\xa8\xe6\x88\xb7@example.org"), ADDRESS_OK,
     "\xe7\x94\xa8\xe6\x88\xb7@example.org", true},
    {BYTES("\"j\xc3\xb6rg x\"@example.org"), ADDRESS_OK,
     "\"j\xc3\xb6rg x\"@example.org", true},
    {BYTES("\xf0\x9f\x98\x80@example.org"), ADDRESS_OK,
     "\xf0\x9f\x98\x80@example.org", true},

    /* IDN domains become A-labels; the local part stays ASCII. */
    {BYTES("user@b\xc3\xbc"
           "cher.de"),
     ADDRESS_OK, "user@xn--bcher-kva.de", false},
    {BYTES("user@B\xc3\x9c"
           "CHER.DE"),
     ADDRESS_OK, "user@xn--bcher-kva.de", false},
    {BYTES("user@fa\xc3\x9f.de"), ADDRESS_OK, "user@xn--fa-hia.de", false},
    {BYTES("user@\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83"
           "\x88"),
     ADDRESS_OK, "user@xn--r8jz45g.xn--zckzah", false},
    {BYTES("user@XN--BCHER-KVA.DE"), ADDRESS_OK, "user@xn--bcher-kva.de",
     false},
    /* U+3002 IDEOGRAPHIC FULL STOP separates labels under UTS #46. */
    {BYTES("user@b\xc3\xbc"
           "cher\xe3\x80\x82"
           "de"),
     ADDRESS_OK, "user@xn--bcher-kva.de", false},

    /* Empty input, control characters and command injection. */
    {BYTES(""), ADDRESS_EMPTY, NULL, false},
    {BYTES("a@b.test\r\nDATA"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a@b.test\nRSET"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a@b.test\rQUIT"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a\0b@example.org"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a@example.org\0"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("\"a\tb\"@example.org"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("\"a\r\nb\"@example.org"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a\x7f@example.org"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("a\xc2\x85@example.org"), ADDRESS_CONTROL_CHAR, NULL, false},
    {BYTES("\r\n"), ADDRESS_CONTROL_CHAR, NULL, false},
    /* A control character wins over an earlier problem of another kind. */
    {BYTES("<a@b.test>\r\nDATA"), ADDRESS_CONTROL_CHAR, NULL, false},

    /* Bytes that are not UTF-8. */
    {BYTES("a\xff@example.org"), ADDRESS_BAD_UTF8, NULL, false},
    {BYTES("a\xc0\xaf@example.org"), ADDRESS_BAD_UTF8, NULL, false},
    {BYTES("a\xed\xa0\x80@example.org"), ADDRESS_BAD_UTF8, NULL, false},
    {BYTES("user@b\xc3.de"), ADDRESS_BAD_UTF8, NULL, false},
    {BYTES("a\xf4\x90\x80\x80@example.org"), ADDRESS_BAD_UTF8, NULL, false},

    /* Spaces, angle brackets and @ signs. */
    {BYTES("john doe@example.org"), ADDRESS_SPACE, NULL, false},
    {BYTES(" user@example.org"), ADDRESS_SPACE, NULL, false},
    {BYTES("user@example.org "), ADDRESS_SPACE, NULL, false},
    {BYTES("user@exa mple.org"), ADDRESS_SPACE, NULL, false},
    {BYTES("<user@example.org>"), ADDRESS_ANGLE_BRACKET, NULL, false},
    {BYTES("user@example.org>"), ADDRESS_ANGLE_BRACKET, NULL, false},
    {BYTES("userexample.org"), ADDRESS_NO_AT, NULL, false},
    {BYTES("\"user\""), ADDRESS_NO_AT, NULL, false},
    {BYTES("a@b@example.org"), ADDRESS_MANY_AT, NULL, false},

    /* Local part syntax. */
    {BYTES("@example.org"), ADDRESS_LOCAL_EMPTY, NULL, false},
    {BYTES("\"\"@example.org"), ADDRESS_LOCAL_EMPTY, NULL, false},
    {BYTES(".user@example.org"), ADDRESS_LOCAL_DOT, NULL, false},
    {BYTES("user.@example.org"), ADDRESS_LOCAL_DOT, NULL, false},
    {BYTES("us..er@example.org"), ADDRESS_LOCAL_DOT, NULL, false},
    {BYTES("us(er)@example.org"), ADDRESS_LOCAL_CHAR, NULL, false},
    {BYTES("us\\er@example.org"), ADDRESS_LOCAL_CHAR, NULL, false},
    {BYTES("us,er@example.org"), ADDRESS_LOCAL_CHAR, NULL, false},
    {BYTES("a\"b\"@example.org"), ADDRESS_LOCAL_CHAR, NULL, false},
    {BYTES("\"ab\"c@example.org"), ADDRESS_LOCAL_CHAR, NULL, false},
    {BYTES("\"abc@example.org"), ADDRESS_QUOTE_UNCLOSED, NULL, false},
    {BYTES("\"abc\\"), ADDRESS_QUOTE_UNCLOSED, NULL, false},
    {BYTES("\"a\\\xc3\xa9\"@example.org"), ADDRESS_QUOTE_CHAR, NULL, false},

    /* Domain syntax. */
    {BYTES("user@"), ADDRESS_DOMAIN_EMPTY, NULL, false},
    {BYTES("user@[192.0.2.1]"), ADDRESS_DOMAIN_LITERAL, NULL, false},
    {BYTES("user@[IPv6:2001:db8::1]"), ADDRESS_DOMAIN_LITERAL, NULL, false},
    {BYTES("user@.example.org"), ADDRESS_DOMAIN_DOT, NULL, false},
    {BYTES("user@example.org."), ADDRESS_DOMAIN_DOT, NULL, false},
    {BYTES("user@example..org"), ADDRESS_DOMAIN_DOT, NULL, false},
    {BYTES("user@-example.org"), ADDRESS_DOMAIN_HYPHEN, NULL, false},
    {BYTES("user@example-.org"), ADDRESS_DOMAIN_HYPHEN, NULL, false},
    {BYTES("user@exa_mple.org"), ADDRESS_DOMAIN_CHAR, NULL, false},
    {BYTES("user@exa!mple.org"), ADDRESS_DOMAIN_CHAR, NULL, false},
    {BYTES("user@localhost"), ADDRESS_DOMAIN_ONE_LABEL, NULL, false},
    {BYTES("user@192.0.2.1"), ADDRESS_DOMAIN_NUMERIC, NULL, false},
    {BYTES("user@xn--zz.test"), ADDRESS_DOMAIN_IDN, NULL, false},
    {BYTES("user@\xc3\xbc-.de"), ADDRESS_DOMAIN_IDN, NULL, false},
    {BYTES("user@a_b.\xc3\xbc.test"), ADDRESS_DOMAIN_CHAR, NULL, false},
    {BYTES("user@\xc3\xbc..test"), ADDRESS_DOMAIN_DOT, NULL, false},
    {BYTES("user@\xc3\xbc.test."), ADDRESS_DOMAIN_DOT, NULL, false},
    {BYTES("user@\xc3\xbc"), ADDRESS_DOMAIN_ONE_LABEL, NULL, false},
};

static void
test_table(void)
{
    size_t ncases = sizeof cases / sizeof cases[0];

    CHECK(ncases >= 60);
    for (size_t i = 0; i < ncases; i++) {
        const struct address_case *c = &cases[i];
        struct address a;
        enum address_error err = address_parse(c->input, c->len, &a);

        if (err != c->err) {
            fprintf(stderr, "case %zu: got %s, want %s\n", i,
                    address_error_name(err), address_error_name(c->err));
        }
        CHECK_INT(err, c->err);
        if (c->err != ADDRESS_OK) {
            CHECK_STR(a.normalized, "");
            continue;
        }
        CHECK_STR(a.normalized, c->normalized);
        CHECK_INT(a.utf8_local, c->utf8_local);
    }
}

static void
test_parts(void)
{
    struct address a;
    const char in[] = "\"John Doe\"@B\xc3\x9c"
                      "CHER.de";

    CHECK_INT(address_parse(in, sizeof in - 1, &a), ADDRESS_OK);
    CHECK_STR(a.local, "\"John Doe\"");
    CHECK_STR(a.domain, "xn--bcher-kva.de");
    CHECK_STR(a.normalized, "\"John Doe\"@xn--bcher-kva.de");
    CHECK(!a.utf8_local);
}

/* Fills buf with n copies of c and a NUL; returns buf. */
static char *
repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static enum address_error
parse_joined(const char *local, const char *domain, struct address *a)
{
    char buf[2 * ADDRESS_INPUT_MAX];
    int n = snprintf(buf, sizeof buf, "%s@%s", local, domain);

    if (n < 0 || (size_t)n >= sizeof buf)
        return ADDRESS_NERRORS;
    return address_parse(buf, (size_t)n, a);
}

static void
test_local_limits(void)
{
    char local[ADDRESS_INPUT_MAX];
    struct address a;

    CHECK_INT(parse_joined(repeat(local, 'a', 64), "example.org", &a),
              ADDRESS_OK);
    CHECK_INT(strlen(a.local), 64);
    CHECK_INT(parse_joined(repeat(local, 'a', 65), "example.org", &a),
              ADDRESS_LOCAL_TOO_LONG);

    /* 62 characters with a space need the quotes: 64 octets on the wire. */
    repeat(local + 1, 'a', 62);
    local[0] = '"';
    local[10] = ' ';
    local[63] = '"';
    local[64] = '\0';
    CHECK_INT(parse_joined(local, "example.org", &a), ADDRESS_OK);
    CHECK_INT(strlen(a.local), 64);

    repeat(local + 1, 'a', 63);
    local[0] = '"';
    local[10] = ' ';
    local[64] = '"';
    local[65] = '\0';
    CHECK_INT(parse_joined(local, "example.org", &a), ADDRESS_LOCAL_TOO_LONG);

    /* Needless quotes around 64 atext characters come off, so it fits. */
    repeat(local + 1, 'b', 64);
    local[0] = '"';
    local[65] = '"';
    local[66] = '\0';
    CHECK_INT(parse_joined(local, "example.org", &a), ADDRESS_OK);
    CHECK_INT(strlen(a.local), 64);
    CHECK(a.local[0] == 'b');
}

/* Builds a domain of total length len from 63-octet labels and a final
 * shorter one, such as "aaa...a.aaa...a.test". */
static char *
make_domain(char *buf, size_t len)
{
    size_t pos = 0;

    while (len - pos > 64 + 4) {
        repeat(buf + pos, 'a', 63);
        pos += 63;
        buf[pos++] = '.';
    }
    repeat(buf + pos, 'b', len - pos - 5);
    pos = len - 5;
    memcpy(buf + pos, ".test", 6);
    return buf;
}

static void
test_domain_limits(void)
{
    char local[ADDRESS_INPUT_MAX];
    char domain[ADDRESS_INPUT_MAX];
    struct address a;

    CHECK_INT(parse_joined("u", make_domain(domain, 252), &a), ADDRESS_OK);
    CHECK_INT(strlen(a.normalized), 254);
    CHECK_INT(parse_joined("u", make_domain(domain, 253), &a),
              ADDRESS_TOO_LONG);
    CHECK_INT(
        parse_joined(repeat(local, 'u', 64), make_domain(domain, 189), &a),
        ADDRESS_OK);
    CHECK_INT(strlen(a.normalized), 254);
    CHECK_INT(
        parse_joined(repeat(local, 'u', 64), make_domain(domain, 190), &a),
        ADDRESS_TOO_LONG);

    CHECK_INT(strlen(make_domain(domain, 255)), 255);
    CHECK_INT(parse_joined("u", domain, &a), ADDRESS_TOO_LONG);
    CHECK_INT(parse_joined("u", make_domain(domain, 256), &a),
              ADDRESS_DOMAIN_TOO_LONG);

    repeat(domain, 'c', 63);
    memcpy(domain + 63, ".test", 6);
    CHECK_INT(parse_joined("u", domain, &a), ADDRESS_OK);
    repeat(domain, 'c', 64);
    memcpy(domain + 64, ".test", 6);
    CHECK_INT(parse_joined("u", domain, &a), ADDRESS_DOMAIN_LABEL_TOO_LONG);
}

static void
test_input_limit(void)
{
    char buf[ADDRESS_INPUT_MAX + 2];
    struct address a;

    repeat(buf, 'a', sizeof buf - 1);
    buf[5] = '@';
    CHECK_INT(address_parse(buf, ADDRESS_INPUT_MAX + 1, &a), ADDRESS_TOO_LONG);
    CHECK_INT(address_parse(buf, ADDRESS_INPUT_MAX, &a),
              ADDRESS_DOMAIN_TOO_LONG);
}

static void
test_error_texts(void)
{
    for (int i = 0; i < ADDRESS_NERRORS; i++) {
        const char *sentence = address_error_str((enum address_error)i);
        const char *name = address_error_name((enum address_error)i);

        CHECK(sentence != NULL);
        CHECK(sentence[0] != '\0');
        CHECK(name != NULL);
        CHECK(name[0] != '\0');
        for (int j = 0; j < i; j++) {
            CHECK(strcmp(name, address_error_name((enum address_error)j)) != 0);
        }
    }
    CHECK_STR(address_error_name(ADDRESS_CONTROL_CHAR), "control_char");
    CHECK_STR(address_error_name(ADDRESS_NERRORS), "unknown");
}

/* A small xorshift generator: fixed seed, so a failure repeats. */
static uint32_t
next_random(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/*
 * Parses random strings over an alphabet full of SMTP syntax and checks
 * that an accepted address never contains a byte that could end or split the
 * RCPT TO line, nor an unquoted angle bracket or space.
 */
static void
test_random_no_injection(void)
{
    static const char alphabet[] = "ab.@\"\\ <>\r\n\t\0-x\xc3\xbc[]";
    uint32_t state = 0x2545F491u;
    int accepted = 0;
    int bad = 0;

    for (int round = 0; round < 200000; round++) {
        char buf[16];
        size_t len = next_random(&state) % sizeof buf;
        struct address a;

        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[next_random(&state) % (sizeof alphabet - 1)];
        if (address_parse(buf, len, &a) != ADDRESS_OK)
            continue;
        accepted++;
        for (const char *s = a.normalized; *s != '\0'; s++) {
            if ((unsigned char)*s < 0x20 || *s == 0x7F)
                bad++;
        }
        if (a.normalized[0] != '"' && strpbrk(a.normalized, " <>") != NULL)
            bad++;
    }
    CHECK(accepted > 0);
    CHECK_INT(bad, 0);
}

int
main(void)
{
    test_table();
    test_parts();
    test_local_limits();
    test_domain_limits();
    test_input_limit();
    test_error_texts();
    test_random_no_injection();
    return check_exit("test_address");
}
