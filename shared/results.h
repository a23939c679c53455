/* SPDX-License-Identifier: MIT */
/*
 * Writing final results. One Lua script does everything for a set of jobs
 * atomically: for each job not already answered (a done:<entry> marker with
 * the result's TTL guards against a second answer after a takeover), it adds
 * the result to the results stream, sets result:<id>, pushes to the caller's
 * reply list and counts it in batch:<batch>; then it acknowledges the stream
 * entries that carried the jobs, and optionally puts a probe item back on the
 * delayed set and stores and publishes a catch-all decision. A crash before
 * the script runs loses nothing (the entries stay pending); after it,
 * nothing is answered twice.
 */
#ifndef MXPROBE_RESULTS_H
#define MXPROBE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "keys.h"
#include "redis_conn.h"

struct results_write {
    const struct job *jobs;        /* jobs[i] is answered by results[i] */
    const struct result *results;
    size_t n;
    enum key_kind ack_stream;      /* KEY_JOBS or KEY_PROBES */
    const char *ack_group;
    const char *const *ack_ids;    /* stream entries to XACK */
    size_t n_ack;
    const char *requeue;           /* msgpack probe item for the delayed set */
    size_t requeue_len;            /* 0 when nothing is requeued */
    int64_t requeue_due_ms;        /* wall ms when it is due */
    int result_ttl;                /* seconds */

    /* A catch-all decision stored in the domain hash and published in the
     * same script, so it cannot be lost while the results land; NULL
     * catch_all_hash when the session made no catch-all check. */
    const char *catch_all_hash;    /* the domain hash key */
    const char *catch_all_value;   /* "1", "0" or "unknown" */
    const char *catch_all_message; /* msgpack map for the catchall channel */
    size_t catch_all_message_len;
    int64_t checked_at;            /* wall ms */
    int domain_ttl;                /* seconds, when the hash has no TTL */
};

/*
 * Sends the script. The same contract as redis_conn_command(): on ST_OK, cb
 * fires once with the script's reply (an integer: results written) or NULL.
 */
enum status results_write(struct redis_conn *rc, const struct keys *keys,
                          const struct results_write *w, redis_reply_fn *cb,
                          void *arg);

#endif
