/* SPDX-License-Identifier: MIT */
/*
 * The worker's shared insides: the session slot table and the Redis
 * answer tickets, seen by worker.c (loop, slots, reading), verdicts.c
 * (writing results) and claims.c (takeover, claim refresh, dead letters).
 * Not part of the worker's interface; main.c includes worker.h only.
 */
#ifndef MXPROBE_WORKER_INTERNAL_H
#define MXPROBE_WORKER_INTERNAL_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"
#include "conn.h"
#include "keys.h"
#include "ratelimit.h"
#include "redis_conn.h"
#include "smtp_session.h"
#include "tls.h"

/* XREADGROUP BLOCK time; the connection's command timeout exceeds it. */
#define READ_BLOCK_MS 1000
/* Stream entry ids are two 64-bit numbers: "18446744073709551615-...". */
#define ENTRY_ID_MAX 48
/* A failed results write is tried this many times, then left pending for
 * another worker to take over. */
#define WRITE_TRIES 5
#define WRITE_RETRY_S 2.0
#define TOKEN_MAX 320

enum slot_state {
    SLOT_FREE,
    SLOT_ASKING,  /* ratelimit_take() in flight, before the session or
                     for the host it falls back to */
    SLOT_WAITING, /* limit denied; timer before asking again */
    SLOT_PROBING, /* SMTP session running */
    SLOT_WRITING, /* results script in flight */
    SLOT_RETRYING /* timer before writing the results again */
};

struct worker;
struct claim_request;

struct slot {
    struct worker *w;
    size_t index;
    unsigned gen; /* bumped each time the slot is freed */
    enum slot_state state;
    char entry[ENTRY_ID_MAX];
    struct probe_item item;
    struct smtp_session *sess;
    struct smtp_transport transport;
    struct conn conn;
    ev_timer timer;         /* WAITING and RETRYING delays */
    char token[TOKEN_MAX];  /* ratelimit lease name */
    const char *limit_host; /* host of the held lease, NULL when none */
    const char *held_ip;    /* fallback address waiting for its host's
                               lease; borrowed from the item */
    int64_t started_ms;     /* wall ms when the session started */
    int write_tries;
    bool no_requeue; /* requeue encoding failed: answer every job */
};

struct worker {
    struct ev_loop *loop;
    const struct config *cfg;
    char *id; /* owned copy */
    struct keys keys;
    struct redis_conn *rd;  /* blocking reads only */
    struct redis_conn *cmd; /* everything else */
    struct ratelimit rl;
    struct smtp_session_config scfg;
    struct tls_client *tls; /* STARTTLS settings of every connection */
    struct slot *slots;
    size_t n_slots;
    size_t n_busy;
    bool reading;
    bool read_own_pending; /* the first read resumes our pending items */
    struct claim_request *own_counts; /* owned: their delivery counts */
    bool group_ready;      /* the workers group exists (we created it) */
    bool stopping;
    bool closing; /* worker_free() runs: drop every answer */
    ev_timer read_retry;
    ev_timer claim_timer;
    ev_timer refresh_timer;
    char **sources;
    size_t n_sources;
    size_t source_next;
    uint64_t rng;
    unsigned long long seq;
};

/* Routes a Redis answer back to the slot it was meant for. */
struct ticket {
    struct worker *w;
    size_t index;
    unsigned gen;
};

/* A ticket for sl's current generation; the caller hands it to one Redis
 * callback, which gives it to worker_ticket_take(). */
struct ticket *worker_ticket_new(struct slot *sl);

/* Returns the slot of t, or NULL when the slot moved on or the worker is
 * closing; frees t. */
struct slot *worker_ticket_take(struct ticket *t);

/* Whether r is missing or a Redis error; its text for logs. */
bool worker_reply_is_error(const redisReply *r);
const char *worker_reply_error(const redisReply *r);

/* Whether a slot is busy with the probes entry id. */
bool worker_entry_running(const struct worker *w, const char *id);

/* Frees everything sl owns and reads more work; the Redis entry stays as
 * it is (acked when the results were written, else pending). */
void worker_slot_free(struct slot *sl);

/*
 * Starts work on one stream entry ([id, [field, value, ...]]) delivered
 * deliveries times (0 when not known). Returns false when no slot is free;
 * the entry then stays pending for a later takeover.
 */
bool worker_take_entry(struct worker *w, const redisReply *entry,
                       long long deliveries);

#endif
