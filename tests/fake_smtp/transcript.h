/* SPDX-License-Identifier: MIT */
/*
 * Transcript log of fake-smtp: one line per event, key=value, prefixed with
 * the wall-clock time and the connection number. Each line goes out in a
 * single write() on an O_APPEND descriptor, so the lines of concurrent
 * connection processes never interleave within a line.
 */
#ifndef FAKE_SMTP_TRANSCRIPT_H
#define FAKE_SMTP_TRANSCRIPT_H

#include <stddef.h>

#define TRANSCRIPT_LINE_MAX 2048

/* Writes "t=SECONDS conn=CONN " followed by the formatted event and LF. */
void transcript_log(int fd, long conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies len bytes of wire text into dst (cap bytes, NUL-terminated) with
 * '"', '\\' and every octet outside printable ASCII written as \xHH, and
 * "..." at the end when the text did not fit.
 */
void transcript_quote(char *dst, size_t cap, const char *src, size_t len);

#endif
