/* SPDX-License-Identifier: MIT */
/* Names of the status codes, for logs. */
#include "status.h"

static const char *const status_names[] = {
    [ST_OK] = "ok",
    [ST_AGAIN] = "again",
    [ST_EIO] = "eio",
    [ST_EPROTO] = "eproto",
    [ST_ETIMEDOUT] = "etimedout",
    [ST_ECLOSED] = "eclosed",
    [ST_EDNS] = "edns",
    [ST_EREDIS] = "eredis",
    [ST_EINVAL] = "einval",
    [ST_ECONFIG] = "econfig",
};

_Static_assert(sizeof status_names / sizeof status_names[0] == ST_NSTATUSES,
               "status_names must name every status");

const char *
status_str(enum status st)
{
    if ((unsigned)st >= ST_NSTATUSES)
        return "unknown";
    return status_names[st];
}
