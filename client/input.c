/* SPDX-License-Identifier: MIT */
/* Reading the address list of "mxprobe submit"; see input.h. */
#include "input.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "xalloc.h"

static bool
is_skipped(const char *text, size_t len)
{
    if (len > 0 && text[0] == '#')
        return true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t')
            return false;
    }
    return true;
}

static void
append(struct input *in, const char *text, size_t len, size_t lineno)
{
    struct input_line *line;

    if (in->n == in->cap) {
        in->cap = in->cap == 0 ? 256 : in->cap * 2;
        in->lines = xrealloc(in->lines, in->cap * sizeof *in->lines);
    }
    line = &in->lines[in->n++];
    line->text = xstrndup(text, len);
    line->len = len;
    line->lineno = lineno;
}

enum status
input_read(struct input *in, FILE *f)
{
    char *buf = NULL;
    size_t bufsize = 0;
    size_t lineno = 0;
    ssize_t got;
    enum status st = ST_OK;

    for (;;) {
        size_t len;

        got = getline(&buf, &bufsize, f);
        if (got < 0)
            break;
        lineno++;
        len = (size_t)got;
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
        if (!is_skipped(buf, len))
            append(in, buf, len, lineno);
    }
    if (ferror(f))
        st = ST_EIO;
    free(buf);
    return st;
}

void
input_fini(struct input *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->lines[i].text);
    free(in->lines);
    memset(in, 0, sizeof *in);
}

size_t
input_find(const struct input *in, size_t lineno)
{
    size_t lo = 0;
    size_t hi = in->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (in->lines[mid].lineno == lineno)
            return mid;
        if (in->lines[mid].lineno < lineno)
            lo = mid + 1;
        else
            hi = mid;
    }
    return in->n;
}
