/* SPDX-License-Identifier: MIT */
/*
 * The per-domain state machine of the coordinator: jobs of one domain wait
 * together while the domain's facts are loaded from its hash or resolved
 * (one lookup per domain however many jobs arrive), then are answered
 * directly (dead domains) or forwarded as probe items. It also plans the
 * single catch-all check of a domain and holds that domain's other jobs
 * until the answer is published or catchall_wait passes.
 */
#ifndef MXPROBE_DOMAINS_H
#define MXPROBE_DOMAINS_H

#include <stdint.h>

#include "codec.h"
#include "coordinator.h"
#include "verdict.h"

/* Seconds a dns_error fact is trusted, so the domain is retried soon. */
#define DOMAINS_DNS_ERROR_TTL 60
/* Seconds an "unknown" catch-all decision is trusted before a new check,
 * when the retry schedule is empty (else its first delay). */
#define DOMAINS_CATCHALL_UNKNOWN_TTL 300
/* Seconds an idle domain stays in memory (its facts stay in Redis). */
#define DOMAINS_IDLE_TTL 60

/*
 * Adds a job whose address is valid to its domain (an A-label, borrowed).
 * Takes the job's strings; the caller's struct is zeroed.
 */
void domains_add_job_take(struct coordinator *co, const char *domain,
                          struct job *job);

/* Sends out (or holds) the jobs that domains_add_job_take() queued on
 * ready domains; called once a whole read has been taken in. */
void domains_flush(struct coordinator *co);

/* Applies a published catch-all decision and releases held jobs. */
void domains_on_catchall(struct coordinator *co, const char *domain,
                         enum tristate flag, int64_t checked_at);

/* Runs every second: catch-all deadlines and polling, idle domains. */
void domains_tick(struct coordinator *co);

/* Asks the hash of every domain waiting for a catch-all decision. */
void domains_poll_catchall(struct coordinator *co);

/* Frees every domain and its jobs (the entries stay pending in Redis). */
void domains_free_all(struct coordinator *co);

#endif
