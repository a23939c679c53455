/* SPDX-License-Identifier: MIT */
/* Key names below the configured prefix. */
#include "keys.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A key name is prefix + head + suffix + tail; kinds without a suffix
 * ignore the caller's. */
struct key_form {
    const char *head;
    bool takes_suffix;
    const char *tail;
};

static const struct key_form key_forms[] = {
    [KEY_JOBS] = {"jobs", false, ""},
    [KEY_PROBES] = {"probes", false, ""},
    [KEY_RESULTS] = {"results", false, ""},
    [KEY_RESULT] = {"result:", true, ""},
    [KEY_BATCH] = {"batch:", true, ""},
    [KEY_DOMAIN] = {"domain:", true, ""},
    [KEY_CATCHALL] = {"catchall", false, ""},
    [KEY_DELAYED] = {"delayed", false, ""},
    [KEY_DEAD] = {"dead", false, ""},
    [KEY_DONE] = {"done:", true, ""},
    [KEY_MX_INFLIGHT] = {"mx:", true, ":inflight"},
    [KEY_MX_RATE] = {"mx:", true, ":rate"},
    [KEY_LEASE] = {"coordinator:lease", false, ""},
};

_Static_assert(sizeof key_forms / sizeof key_forms[0] == KEY_NKINDS,
               "key_forms must describe every key kind");

void
keys_init(struct keys *k, const char *prefix)
{
    size_t len = strlen(prefix);

    if (len > KEYS_PREFIX_MAX)
        len = KEYS_PREFIX_MAX;
    memcpy(k->prefix, prefix, len);
    k->prefix[len] = '\0';
}

const char *
keys_name(const struct keys *k, enum key_kind kind, const char *suffix,
          char *buf, size_t size)
{
    const struct key_form *form;

    if (size == 0)
        return buf;
    if ((unsigned)kind >= KEY_NKINDS) {
        buf[0] = '\0';
        return buf;
    }
    form = &key_forms[kind];
    if (!form->takes_suffix || suffix == NULL)
        suffix = "";
    /* A cut name is acceptable here: callers bound suffixes far below the
     * buffer size (see KEYS_NAME_MAX). */
    snprintf(buf, size, "%s%s%s%s", k->prefix, form->head, suffix,
             form->tail);
    return buf;
}
