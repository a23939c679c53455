/* SPDX-License-Identifier: MIT */
/*
 * The address list of "mxprobe submit": one address a line, read from a
 * file or standard input. Lines are kept byte for byte apart from the line
 * end, because the fleet, not the client, judges address syntax.
 */
#ifndef MXPROBE_CLIENT_INPUT_H
#define MXPROBE_CLIENT_INPUT_H

#include <stddef.h>
#include <stdio.h>

#include "status.h"

struct input_line {
    char *text;       /* owned; may contain NUL bytes, so use len */
    size_t len;
    size_t lineno;    /* 1-based line number in the input */
};

struct input {
    struct input_line *lines;  /* in input order */
    size_t n;
    size_t cap;
};

/*
 * Reads every line of f into in (which the caller zeroes first). A trailing
 * LF and then a trailing CR are removed. Blank lines (empty or only spaces
 * and tabs) and lines whose first byte is '#' are skipped, but they count
 * in line numbers. Returns ST_OK, or ST_EIO when reading fails (errno is
 * set).
 */
enum status input_read(struct input *in, FILE *f);

/* Frees the lines and zeroes in, so it can be reused. */
void input_fini(struct input *in);

/*
 * Returns the index of the line numbered lineno, or in->n when there is
 * none. Lines are sorted by number, so this is a binary search.
 */
size_t input_find(const struct input *in, size_t lineno);

#endif
