/* SPDX-License-Identifier: MIT */
/*
 * Allocation wrappers that abort on out-of-memory. The fleet restarts a
 * process that dies, so no call site handles a failed allocation itself.
 */
#ifndef MXPROBE_XALLOC_H
#define MXPROBE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Returns a NUL-terminated heap copy of s, or NULL when s is NULL. */
char *xstrdup(const char *s);
/* Returns a NUL-terminated heap copy of the first len bytes of s. */
char *xstrndup(const char *s, size_t len);

#endif
