/* SPDX-License-Identifier: MIT */
/*
 * Takeover and upkeep of pending probe entries. An entry idle longer than
 * claim_idle belongs to a dead worker and is claimed here; this worker's
 * own running entries are re-claimed with JUSTID so their idle time stays
 * low. The delivery counts of this worker's own pending entries, read
 * again after a restart under the same id, are looked up here too. Entries
 * delivered too often, or that cannot be decoded, are answered or copied to
 * the dead stream instead of being probed again.
 */
#include "claims.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "results.h"
#include "xalloc.h"

/* Moves an entry that cannot be worked on to the dead stream and acks it,
 * both inside one MULTI. */
void
claims_dead_letter(struct worker *w, const char *id, const char *data,
                   size_t len, const char *why)
{
    char dead[KEYS_NAME_MAX];
    char probes[KEYS_NAME_MAX];

    keys_name(&w->keys, KEY_DEAD, NULL, dead, sizeof dead);
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    log_error(NULL, "ev=claims_dead_letter entry=%s why=%s", id, why);
    if (redis_conn_commandf(w->cmd, NULL, NULL, "MULTI") != ST_OK)
        return;
    redis_conn_commandf(w->cmd, NULL, NULL,
                        "XADD %s * item %b why %s "
                        "entry %s",
                        dead, data, len, why, id);
    redis_conn_commandf(w->cmd, NULL, NULL, "XACK %s %s %s", probes,
                        KEYS_GROUP_WORKERS, id);
    redis_conn_commandf(w->cmd, NULL, NULL, "EXEC");
}

/* Answers every job of an item delivered too often with
 * unknown/temporary_failure, acking it, and keeps a copy as a dead
 * letter. */
void
claims_answer_exhausted(struct worker *w, const char *id,
                        struct probe_item *item)
{
    struct result *res = xcalloc(item->n_jobs + 1, sizeof *res);
    const char *ack[1] = {id};
    struct results_write wr = {0};
    int64_t now = clock_wall_ms();

    for (size_t i = 0; i < item->n_jobs; i++) {
        struct result *r = &res[i];

        r->id = item->jobs[i].id;
        r->email = item->jobs[i].email;
        r->address = item->jobs[i].address;
        r->status = VS_UNKNOWN;
        r->reason = VR_TEMPORARY_FAILURE;
        r->catch_all = item->catch_all;
        r->attempts = item->jobs[i].attempts;
        r->checked_at = now;
        r->duration_ms = item->first_ms > 0 ? now - item->first_ms : 0;
        r->worker = w->id;
    }
    wr.jobs = item->jobs;
    wr.results = res;
    wr.n = item->n_jobs;
    wr.ack_stream = KEY_PROBES;
    wr.ack_group = KEYS_GROUP_WORKERS;
    wr.ack_ids = ack;
    wr.n_ack = 1;
    wr.result_ttl = w->cfg->result_ttl;
    if (results_write(w->cmd, &w->keys, &wr, NULL, NULL) != ST_OK)
        log_warn(NULL, "ev=results_write_failed st=eredis entry=%s", id);
    free(res);
}

/* ---- takeover of idle entries and claim refresh ---- */

/* The entries an XPENDING reply listed, with their delivery counts. */
struct claim_request {
    struct worker *w;
    size_t n;
    char (*ids)[ENTRY_ID_MAX];
    long long *deliveries;
};

/* Starts "XCLAIM <probes> workers <this worker>" in a; the caller adds
 * the min-idle time and the entry ids. */
static void
xclaim_args_init(const struct worker *w, struct redis_args *a)
{
    char probes[KEYS_NAME_MAX];

    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    redis_args_init(a);
    redis_args_add_str(a, "XCLAIM");
    redis_args_add_str(a, probes);
    redis_args_add_str(a, KEYS_GROUP_WORKERS);
    redis_args_add_str(a, w->id);
}

static void
claim_request_free(struct claim_request *cr)
{
    if (cr == NULL)
        return;
    free(cr->ids);
    free(cr->deliveries);
    free(cr);
}

static long long
claimed_deliveries(const struct claim_request *cr, const char *id)
{
    for (size_t i = 0; i < cr->n; i++) {
        /* XCLAIM, or a read of our own pending list, counted one more
         * than the XPENDING before it. */
        if (strcmp(cr->ids[i], id) == 0)
            return cr->deliveries[i] + 1;
    }
    return 0;
}

static void
on_claimed(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct claim_request *cr = arg;
    struct worker *w = cr->w;

    (void)rc;
    if (w->closing || worker_reply_is_error(reply) ||
        reply->type != REDIS_REPLY_ARRAY) {
        if (!w->closing)
            log_warn(NULL, "ev=claim_failed st=eredis err=%.200s",
                     worker_reply_error(reply));
        claim_request_free(cr);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        long long n;

        if (e->type != REDIS_REPLY_ARRAY || e->elements == 0 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        n = claimed_deliveries(cr, e->element[0]->str);
        log_info(NULL, "ev=entry_taken_over entry=%s deliveries=%lld",
                 e->element[0]->str, n);
        worker_take_entry(w, e, n);
    }
    claim_request_free(cr);
}

/* Collects [id, consumer, idle, deliveries] rows not running here. */
static struct claim_request *
claim_request_from(struct worker *w, const redisReply *reply)
{
    struct claim_request *cr = xcalloc(1, sizeof *cr);

    cr->w = w;
    cr->ids = xcalloc(reply->elements + 1, sizeof *cr->ids);
    cr->deliveries = xcalloc(reply->elements + 1, sizeof *cr->deliveries);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *row = reply->element[i];

        if (row->type != REDIS_REPLY_ARRAY || row->elements < 4 ||
            row->element[0]->type != REDIS_REPLY_STRING ||
            row->element[0]->len >= ENTRY_ID_MAX ||
            worker_entry_running(w, row->element[0]->str))
            continue;
        memcpy(cr->ids[cr->n], row->element[0]->str, row->element[0]->len + 1);
        cr->deliveries[cr->n] = row->element[3]->type == REDIS_REPLY_INTEGER
                                    ? row->element[3]->integer
                                    : 0;
        cr->n++;
    }
    return cr;
}

static void
on_pending(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct worker *w = arg;
    struct claim_request *cr;
    struct redis_args a;

    (void)rc;
    if (w->closing || w->stopping || worker_reply_is_error(reply) ||
        reply->type != REDIS_REPLY_ARRAY)
        return;
    cr = claim_request_from(w, reply);
    if (cr->n == 0) {
        claim_request_free(cr);
        return;
    }
    xclaim_args_init(w, &a);
    /* The same idle bound again: an entry its owner refreshed in the
     * meantime is left alone. */
    redis_args_add_int(&a, (long long)(w->cfg->claim_idle * 1000));
    for (size_t i = 0; i < cr->n; i++)
        redis_args_add_str(&a, cr->ids[i]);
    if (redis_conn_command_args(w->cmd, on_claimed, cr, &a) != ST_OK)
        claim_request_free(cr);
    redis_args_fini(&a);
}

/* ---- delivery counts of our own pending entries ---- */

static void
on_own_pending(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)rc;
    claims_own_done(w);
    if (w->closing || worker_reply_is_error(reply) ||
        reply->type != REDIS_REPLY_ARRAY)
        return;
    w->own_counts = claim_request_from(w, reply);
}

enum status
claims_count_own(struct worker *w, size_t max)
{
    char probes[KEYS_NAME_MAX];

    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    return redis_conn_commandf(w->rd, on_own_pending, w,
                               "XPENDING %s %s - + %lld %s", probes,
                               KEYS_GROUP_WORKERS, (long long)max, w->id);
}

long long
claims_own_deliveries(const struct worker *w, const redisReply *entry)
{
    if (w->own_counts == NULL || entry->type != REDIS_REPLY_ARRAY ||
        entry->elements == 0 || entry->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    return claimed_deliveries(w->own_counts, entry->element[0]->str);
}

void
claims_own_done(struct worker *w)
{
    claim_request_free(w->own_counts);
    w->own_counts = NULL;
}

void
claims_on_claim_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    size_t free_slots = w->n_slots - w->n_busy;
    char probes[KEYS_NAME_MAX];

    (void)loop;
    (void)revents;
    if (w->stopping || free_slots == 0 || !redis_conn_is_ready(w->cmd))
        return;
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    redis_conn_commandf(
        w->cmd, on_pending, w, "XPENDING %s %s IDLE %lld - + %lld", probes,
        KEYS_GROUP_WORKERS, (long long)(w->cfg->claim_idle * 1000),
        (long long)free_slots);
}

/*
 * Resets the idle time of the entries this worker is working on (XCLAIM
 * to itself with JUSTID, which leaves the delivery count alone), so no
 * other worker takes them over, and renews their per-MX leases.
 */
void
claims_on_refresh_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    struct redis_args a;
    int64_t now = clock_wall_ms();

    (void)loop;
    (void)revents;
    if (w->n_busy == 0 || !redis_conn_is_ready(w->cmd))
        return;
    xclaim_args_init(w, &a);
    redis_args_add_str(&a, "0");
    for (size_t i = 0; i < w->n_slots; i++) {
        struct slot *sl = &w->slots[i];

        if (sl->state == SLOT_FREE)
            continue;
        redis_args_add_str(&a, sl->entry);
        if (sl->limit_host != NULL)
            ratelimit_renew(&w->rl, sl->limit_host, sl->token, now);
    }
    redis_args_add_str(&a, "JUSTID");
    redis_conn_command_args(w->cmd, NULL, NULL, &a);
    redis_args_fini(&a);
}
