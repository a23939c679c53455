/* SPDX-License-Identifier: MIT */
/*
 * Pending probe entries: taking over those left idle by dead workers
 * (XPENDING + XCLAIM), keeping the claims of this worker's own running
 * entries fresh, and answering or dead-lettering entries that cannot be
 * worked on. Starting the work itself is the slot table's job.
 */
#ifndef MXPROBE_CLAIMS_H
#define MXPROBE_CLAIMS_H

#include <stddef.h>

#include "worker_internal.h"

/* Copies entry id (data, the item's bytes, may be empty) to the dead
 * stream with why, and acks it, in one MULTI. Fire and forget. */
void claims_dead_letter(struct worker *w, const char *id, const char *data,
                        size_t len, const char *why);

/* Answers every job of item (entry id) with unknown/temporary_failure and
 * acks the entry, for items delivered more than max_deliveries times. */
void claims_answer_exhausted(struct worker *w, const char *id,
                             struct probe_item *item);

/*
 * Delivery counts of this worker's own pending entries, for the read of
 * that list after a restart under the same id. Without them an item that
 * crashes the worker would be read again on every restart.
 * claims_count_own() queues XPENDING for the first max entries on w->rd,
 * right before the history read on the same connection, and stores the
 * reply in w->own_counts; it returns ST_OK or the status of the send.
 * claims_own_deliveries() returns an entry's delivery count including
 * that read (0 when not known). claims_own_done() frees the counts.
 */
enum status claims_count_own(struct worker *w, size_t max);
long long claims_own_deliveries(const struct worker *w,
                                const redisReply *entry);
void claims_own_done(struct worker *w);

/* Timer callbacks (t->data is the worker): every claim_idle/2, take over
 * entries idle longer than claim_idle; every claim_idle/3, reset the idle
 * time of this worker's running entries and renew their per-MX leases. */
void claims_on_claim_timer(struct ev_loop *loop, ev_timer *t, int revents);
void claims_on_refresh_timer(struct ev_loop *loop, ev_timer *t, int revents);

#endif
