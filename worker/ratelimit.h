/* SPDX-License-Identifier: MIT */
/*
 * Fleet-wide limits per MX host, kept in Redis so that every worker of the
 * fleet sees the same numbers: at most `concurrency` sessions open to one
 * host, and at most `rate` new sessions per host per minute. A session
 * holds a lease (a member of a sorted set scored by its expiry), so the
 * slots of a worker that dies free themselves when their leases run out.
 */
#ifndef MXPROBE_RATELIMIT_H
#define MXPROBE_RATELIMIT_H

#include <stdint.h>

#include "keys.h"
#include "redis_conn.h"
#include "status.h"

enum ratelimit_answer {
    RL_GRANTED, /* a lease was taken: call ratelimit_release() later */
    RL_BUSY,    /* the host has `concurrency` sessions open */
    RL_RATE,    /* the host's sessions of this minute are used up */
    RL_ERROR    /* Redis did not answer; nothing was taken */
};

struct ratelimit {
    struct redis_conn *rc;   /* borrowed */
    const struct keys *keys; /* borrowed */
    int concurrency;         /* <= 0: no limit */
    int rate;                /* per minute; <= 0: no limit */
    int64_t lease_ms;        /* how long a lease lives unless renewed */
};

/* Fires exactly once per accepted ratelimit_take(). */
typedef void ratelimit_done_fn(void *arg, enum ratelimit_answer answer);

/*
 * Asks for a lease named token (unique per session) on host. now_ms is the
 * wall clock in ms. Returns ST_OK, and cb fires once later from the loop;
 * or ST_EREDIS when Redis is not connected, and cb never fires.
 */
enum status ratelimit_take(struct ratelimit *rl, const char *host,
                           const char *token, int64_t now_ms,
                           ratelimit_done_fn *cb, void *arg);

/* Extends a held lease to now_ms + lease_ms. Fire and forget. */
enum status ratelimit_renew(struct ratelimit *rl, const char *host,
                            const char *token, int64_t now_ms);

/* Gives a lease back. Fire and forget: a lost release only keeps the slot
 * busy until the lease expires. */
enum status ratelimit_release(struct ratelimit *rl, const char *host,
                              const char *token);

const char *ratelimit_answer_str(enum ratelimit_answer answer);

#endif
