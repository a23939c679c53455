/* SPDX-License-Identifier: MIT */
/*
 * Redis key and group names, all below the configured prefix. The public ones
 * (jobs, results, result:<id>, batch:<batch>, domain:<domain>, catchall) are a
 * contract with clients; the others may change between versions.
 */
#ifndef MXPROBE_KEYS_H
#define MXPROBE_KEYS_H

#include <stddef.h>

#define KEYS_PREFIX_MAX 64
/* Enough for the prefix, the longest kind name and a 512-byte suffix. */
#define KEYS_NAME_MAX 640

/* Consumer groups. */
#define KEYS_GROUP_COORDINATOR "coordinator"
#define KEYS_GROUP_WORKERS "workers"

enum key_kind {
    KEY_JOBS,          /* stream: submitted jobs */
    KEY_PROBES,        /* stream: probe items for workers */
    KEY_RESULTS,       /* stream: results */
    KEY_RESULT,        /* string result:<id>: one result's msgpack map */
    KEY_BATCH,         /* hash batch:<batch>: counters */
    KEY_DOMAIN,        /* hash domain:<domain>: domain facts */
    KEY_CATCHALL,      /* channel: catch-all decisions */
    KEY_DELAYED,       /* sorted set: probe items due later, scored in ms */
    KEY_DEAD,          /* stream: dead-lettered jobs and items */
    KEY_DONE,          /* string done:<jobs entry id>: result already written */
    KEY_MX_INFLIGHT,   /* string mx:<host>:inflight: sessions open */
    KEY_MX_RATE,       /* string mx:<host>:rate: sessions this minute */
    KEY_LEASE,         /* string coordinator:lease: leader lease */
    KEY_NKINDS
};

struct keys {
    char prefix[KEYS_PREFIX_MAX + 1];
};

/* Copies prefix (truncated to KEYS_PREFIX_MAX). */
void keys_init(struct keys *k, const char *prefix);

/*
 * Writes the name of kind (with suffix for the kinds that take one, else
 * suffix is ignored) into buf and returns buf. A name that would not fit is
 * cut, which only happens with suffixes over 512 bytes; callers bound ids
 * and domains well below that.
 */
const char *keys_name(const struct keys *k, enum key_kind kind,
                      const char *suffix, char *buf, size_t size);

#endif
