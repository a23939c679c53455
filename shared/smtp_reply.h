/* SPDX-License-Identifier: MIT */
/*
 * An incremental SMTP reply parser that never touches a socket: the caller
 * feeds it the bytes it read and gets whole replies back, multi-line replies
 * joined (RFC 5321 section 4.2). Every buffer is bounded, so a hostile server
 * can make it fail but never make it grow.
 */
#ifndef MXPROBE_SMTP_REPLY_H
#define MXPROBE_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* RFC 5321 section 4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
#define SMTP_REPLY_LINE_MAX 512
/* Longer replies than this are treated as a protocol error. */
#define SMTP_REPLY_LINES_MAX 100
/* The joined text keeps at most this many bytes (the rest is cut). */
#define SMTP_REPLY_TEXT_MAX 1024
/* "5.1.1" up to "5.999.999" and a NUL. */
#define SMTP_ENHANCED_MAX 12

struct smtp_reply {
    int code;                          /* basic reply code, 200..599 */
    char enhanced[SMTP_ENHANCED_MAX];  /* RFC 3463 code ("5.1.1") or "" */
    char text[SMTP_REPLY_TEXT_MAX];    /* NUL-terminated, see below */
    size_t nlines;                     /* lines the reply had */
};

struct smtp_reply_parser {
    char line[SMTP_REPLY_LINE_MAX + 1];
    size_t line_len;
    struct smtp_reply partial;  /* the reply being assembled */
    int failed;                 /* sticky: set after ST_EPROTO */
    bool text_cut;              /* partial.text reached its limit */
};

/* Prepares p (owned by the caller, usually embedded) for a new connection. */
void smtp_reply_parser_init(struct smtp_reply_parser *p);

/*
 * Feeds len bytes of server output. Returns:
 * - ST_OK: one whole reply is in *out; *consumed bytes of data were used, and
 *   the caller feeds the rest (data + *consumed) again, because a server may
 *   send several replies in one segment (PIPELINING);
 * - ST_AGAIN: all bytes were taken and the reply is not complete yet;
 * - ST_EPROTO: the input is not an SMTP reply (no three-digit code, codes
 *   that differ between lines, a line over SMTP_REPLY_LINE_MAX octets, more
 *   than SMTP_REPLY_LINES_MAX lines); the parser stays failed after that.
 * The text of a reply is the text of each line after the code (and after
 * the enhanced code, when the line repeats it), joined with single spaces;
 * control characters and bytes that are not valid UTF-8 become '?'. Bare LF
 * line ends are accepted as well as CRLF.
 * Details: a line counts its CRLF (or LF) toward SMTP_REPLY_LINE_MAX; spaces
 * and tabs around each line's text are trimmed and empty texts are skipped
 * when joining; text over SMTP_REPLY_TEXT_MAX - 1 bytes is cut at a
 * character boundary. The enhanced code is taken from the first line that
 * has one; it must be "class.subject.detail" with the class equal to the
 * first digit of the code and be followed by a space or the line end.
 * On ST_EPROTO, *consumed counts the bytes up to the one that broke the
 * reply. All pointers are borrowed; *out is written only on ST_OK.
 */
enum status smtp_reply_feed(struct smtp_reply_parser *p, const char *data,
                            size_t len, size_t *consumed,
                            struct smtp_reply *out);

#endif
