/* SPDX-License-Identifier: MIT */
/*
 * Syntax check and normalization of one submitted email address, following
 * the Mailbox grammar of RFC 5321 section 4.1.2, the limits of section
 * 4.5.3.1 and the UTF-8 extensions of RFC 6531. It never resolves or
 * contacts anything: whether the domain exists is the coordinator's job.
 */
#ifndef MXPROBE_ADDRESS_H
#define MXPROBE_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 section 4.5.3.1.3 limits a path to 256 octets with the angle
 * brackets, so the address itself has at most 254. */
#define ADDRESS_MAX 254
/* RFC 5321 section 4.5.3.1.1. */
#define ADDRESS_LOCAL_MAX 64
/* RFC 5321 section 4.5.3.1.2. */
#define ADDRESS_DOMAIN_MAX 255
/* RFC 1035 section 2.3.4. */
#define ADDRESS_LABEL_MAX 63
/*
 * Longer input is rejected before any parsing. A UTF-8 domain may be longer
 * than its A-label, so this bound is above ADDRESS_MAX, but it keeps the work
 * done on hostile input small.
 */
#define ADDRESS_INPUT_MAX 1024

struct address {
    /* The local part as it goes into RCPT TO: case kept, quoted only when
     * the dot-atom form cannot express it. */
    char local[ADDRESS_LOCAL_MAX + 1];
    /* Lowercase LDH domain; an IDN domain is stored as its A-label. */
    char domain[ADDRESS_DOMAIN_MAX + 1];
    /* local@domain, the exact text to place between < and > in RCPT TO. */
    char normalized[ADDRESS_MAX + 1];
    /* The local part contains UTF-8, so the server must offer SMTPUTF8
     * (RFC 6531) before the address can be sent. */
    bool utf8_local;
};

enum address_error {
    ADDRESS_OK = 0,
    ADDRESS_EMPTY,
    ADDRESS_TOO_LONG,
    ADDRESS_CONTROL_CHAR,
    ADDRESS_BAD_UTF8,
    ADDRESS_SPACE,
    ADDRESS_ANGLE_BRACKET,
    ADDRESS_NO_AT,
    ADDRESS_MANY_AT,
    ADDRESS_LOCAL_EMPTY,
    ADDRESS_LOCAL_TOO_LONG,
    ADDRESS_LOCAL_DOT,
    ADDRESS_LOCAL_CHAR,
    ADDRESS_QUOTE_UNCLOSED,
    ADDRESS_QUOTE_CHAR,
    ADDRESS_DOMAIN_EMPTY,
    ADDRESS_DOMAIN_LITERAL,
    ADDRESS_DOMAIN_TOO_LONG,
    ADDRESS_DOMAIN_DOT,
    ADDRESS_DOMAIN_LABEL_TOO_LONG,
    ADDRESS_DOMAIN_HYPHEN,
    ADDRESS_DOMAIN_CHAR,
    ADDRESS_DOMAIN_ONE_LABEL,
    ADDRESS_DOMAIN_NUMERIC,
    ADDRESS_DOMAIN_IDN,
    ADDRESS_NERRORS
};

/*
 * Parses len bytes of untrusted input (not NUL-terminated, and may contain
 * NUL) as one address without angle brackets. Returns ADDRESS_OK and fills
 * *out, or the first problem found, in which case *out is cleared. Both
 * pointers are borrowed. Any control character anywhere in the input, CR,
 * LF and NUL included, is rejected, so an accepted address can never carry
 * an SMTP command.
 */
enum address_error address_parse(const char *input, size_t len,
                                 struct address *out);

/* Returns a sentence for users, such as "contains a control character (CR,
 * LF, NUL or another)"; a static string. */
const char *address_error_str(enum address_error err);

/* Returns a short constant name for logs and results, such as
 * "control_char"; a static string. */
const char *address_error_name(enum address_error err);

#endif
