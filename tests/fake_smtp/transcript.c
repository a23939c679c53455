/* SPDX-License-Identifier: MIT */
/*
 * Transcript lines of fake-smtp. Tests grep them (for example
 * "ev=recv verb=DATA" must never appear in a probe test), so the format is
 * part of the lab's interface: see tests/scenarios/README.md.
 */
#include "transcript.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void
transcript_log(int fd, long conn, const char *fmt, ...)
{
    char line[TRANSCRIPT_LINE_MAX];
    struct timespec ts;
    va_list ap;
    int head;
    int body;
    size_t len;
    ssize_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    head = snprintf(line, sizeof line, "t=%lld.%03ld conn=%ld ",
                    (long long)ts.tv_sec, ts.tv_nsec / 1000000, conn);
    if (head < 0 || (size_t)head >= sizeof line)
        return;
    va_start(ap, fmt);
    body = vsnprintf(line + head, sizeof line - (size_t)head, fmt, ap);
    va_end(ap);
    if (body < 0)
        return;
    len = (size_t)head + (size_t)body;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    do {
        n = write(fd, line, len);
    } while (n < 0 && errno == EINTR);
}

void
transcript_quote(char *dst, size_t cap, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;
    unsigned char c;

    if (cap < 8) {
        if (cap > 0)
            dst[0] = '\0';
        return;
    }
    for (i = 0; i < len; i++) {
        c = (unsigned char)src[i];
        if (o + 4 >= cap - 4) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            dst[o++] = (char)c;
            continue;
        }
        dst[o++] = '\\';
        dst[o++] = 'x';
        dst[o++] = hex[c >> 4];
        dst[o++] = hex[c & 0x0f];
    }
    dst[o] = '\0';
}
