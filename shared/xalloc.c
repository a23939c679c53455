/* SPDX-License-Identifier: MIT */
/* Allocation wrappers: log at crit level and abort when memory runs out. */
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static void
xalloc_fail(size_t size)
{
    log_crit(NULL, "ev=out_of_memory bytes=%zu", size);
    abort();
}

void *
xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        xalloc_fail(size);
    return p;
}

void *
xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);

    if (p == NULL)
        xalloc_fail(count * size);
    return p;
}

void *
xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        xalloc_fail(size);
    return p;
}

char *
xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t len)
{
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
