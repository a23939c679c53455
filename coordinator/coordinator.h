/* SPDX-License-Identifier: MIT */
/*
 * The coordinator process: its Redis connections, its resolver, its timers
 * and the jobs it keeps in memory. This file owns the lifecycle (start,
 * read loop, takeover of abandoned jobs, delayed items, shutdown); the
 * per-domain work is in domains.c and the writes to Redis in dispatch.c.
 */
#ifndef MXPROBE_COORDINATOR_H
#define MXPROBE_COORDINATOR_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "dns.h"
#include "keys.h"
#include "redis_conn.h"
#include "strmap.h"

/* Jobs read per XREADGROUP, and the BLOCK time in milliseconds. */
#define COORD_READ_COUNT 100
#define COORD_READ_BLOCK_MS 1000
/* Reading pauses while this many jobs wait in memory. */
#define COORD_JOBS_MEMORY_MAX 50000
/* Seconds the shutdown waits for writes in flight. */
#define COORD_STOP_WAIT 5.0

struct domain;
struct coord_claim;

struct coordinator {
    struct ev_loop *loop;
    const struct config *cfg;
    struct keys keys;
    struct redis_addr raddr;
    char consumer[128];          /* consumer name in the jobs group */

    struct redis_conn *rc_read;  /* XREADGROUP BLOCK only */
    struct redis_conn *rc_cmd;   /* everything else */
    struct redis_conn *rc_sub;   /* SUBSCRIBE to the catch-all channel */
    struct dns *dns;

    struct strmap domains;       /* domain name -> struct domain */
    struct domain *dirty;        /* domains with new jobs, sent out by
                                    domains_flush() after a whole read */
    struct strmap entries;       /* jobs entry ids held in memory */
    size_t writes;               /* dispatch writes awaiting their reply */

    ev_timer tick;               /* every second: deadlines, delayed set */
    ev_timer claim;              /* every claim_idle/2: takeover */
    ev_timer stop_wait;
    ev_signal sigterm;
    ev_signal sigint;

    bool reading;                /* an XREADGROUP is outstanding */
    bool read_own;               /* the next read fetches our pending list */
    char own_cursor[64];         /* last id of our pending list seen */
    struct coord_claim *own_claim; /* owned: delivery counts of the page
                                      of our own list being read */
    bool read_own_wanted;        /* a write failed: read our list again */
    bool claiming;               /* a takeover scan is running */
    char claim_cursor[64];       /* XPENDING start for the next scan */
    unsigned ticks;
    bool stopping;               /* no new reads; waiting for writes */
    bool closing;                /* connections are going away */
};

/*
 * Sets up connections, resolver, timers and signal watchers on loop.
 * Returns ST_OK, or ST_ECONFIG with a message in err.
 */
enum status coordinator_init(struct coordinator *co, struct ev_loop *loop,
                             const struct config *cfg, char *err,
                             size_t errsize);

/* Frees everything; jobs still in memory stay pending in the jobs stream,
 * so a restarted coordinator reads them again. */
void coordinator_fini(struct coordinator *co);

/* Begins the graceful stop (as on SIGTERM). */
void coordinator_stop(struct coordinator *co);

/* Forgets that the jobs entry is in memory; called when its job is written
 * or dropped. lost means the write failed, so our pending list is read
 * again to pick the entry back up. */
void coordinator_release_entry(struct coordinator *co, const char *entry,
                               bool lost);

/* Called by dispatch when a write completes, to finish a shutdown. */
void coordinator_on_write_done(struct coordinator *co);

#endif
