/* SPDX-License-Identifier: MIT */
/*
 * Results of a finished session. Each job gets a result map, except jobs
 * whose reply was temporary and that have retries left in the schedule:
 * those go back as one new probe item into the delayed set, in the same
 * script that writes the others and acks the probe entry.
 */
#include "verdicts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "results.h"
#include "xalloc.h"

static enum tristate
slot_catch_all(const struct slot *sl)
{
    if (sl->item.catch_all != TRI_UNKNOWN)
        return sl->item.catch_all;
    if (smtp_session_tested_catch_all(sl->sess))
        return smtp_session_catch_all(sl->sess);
    return TRI_UNKNOWN;
}

/* Whether job i gets another attempt later instead of a result now: a
 * temporary reply (greylisting, 4xx) with attempts left in the schedule. */
static bool
job_requeued(const struct slot *sl, size_t i)
{
    const struct smtp_outcome *o = smtp_session_outcome(sl->sess, i);
    int attempts_made = sl->item.jobs[i].attempts + 1;

    return o->cls.retry && !sl->no_requeue &&
           (size_t)attempts_made <= sl->w->cfg->n_retry_delays;
}

static int64_t
job_first_ms(const struct slot *sl, size_t i)
{
    int64_t first = sl->item.jobs[i].first_probe_ms;

    return first > 0 ? first : sl->started_ms;
}

static void
fill_result(const struct slot *sl, size_t i, int64_t now, struct result *r)
{
    const struct job *job = &sl->item.jobs[i];
    const struct smtp_outcome *o = smtp_session_outcome(sl->sess, i);

    memset(r, 0, sizeof *r);
    r->id = job->id;
    r->email = job->email;
    r->address = job->address;
    r->status = o->cls.status;
    r->reason = o->cls.reason;
    r->catch_all = slot_catch_all(sl);
    r->has_smtp = o->has_smtp;
    r->smtp = o->smtp;
    r->mx = o->mx != NULL ? xstrdup(o->mx) : NULL;
    r->mx_ip = o->ip != NULL ? xstrdup(o->ip) : NULL;
    r->attempts = job->attempts + 1;
    r->checked_at = now;
    r->duration_ms = now - job_first_ms(sl, i);
    if (r->duration_ms < 0)
        r->duration_ms = 0;
    r->worker = sl->w->id;
}

/* Encodes the jobs to try again as a new probe item into sb; returns the
 * wall ms when it is due. */
static int64_t
encode_requeue(const struct slot *sl, msgpack_sbuffer *sb)
{
    const struct probe_item *item = &sl->item;
    struct probe_item again = *item;
    struct job *jobs = xcalloc(item->n_jobs, sizeof *jobs);
    int64_t due = 0;

    again.n_jobs = 0;
    again.catchall_local = NULL;
    again.catch_all = slot_catch_all(sl);
    again.attempt = item->attempt + 1;
    for (size_t i = 0; i < item->n_jobs; i++) {
        struct job *j;
        int64_t job_due;

        if (!job_requeued(sl, i))
            continue;
        j = &jobs[again.n_jobs++];
        *j = item->jobs[i]; /* shallow: the strings stay the item's */
        j->attempts = item->jobs[i].attempts + 1;
        j->first_probe_ms = job_first_ms(sl, i);
        job_due = j->first_probe_ms +
                  (int64_t)sl->w->cfg->retry_delays[j->attempts - 1] * 1000;
        if (due == 0 || job_due < due)
            due = job_due;
    }
    again.jobs = jobs;
    if (codec_encode_probe(&again, sb) != ST_OK)
        due = -1;
    free(jobs);
    return due;
}

static void
log_job(const struct slot *sl, size_t i, bool requeued)
{
    const struct job *job = &sl->item.jobs[i];
    const struct smtp_outcome *o = smtp_session_outcome(sl->sess, i);
    struct log_ctx ctx = {
        .job = job->id,
        .domain = sl->item.domain,
        .mx = o->mx,
        .ip = o->ip,
    };

    log_info(&ctx, "ev=%s status=%s reason=%s code=%d esc=%s attempts=%d",
             requeued ? "job_requeued" : "job_done",
             verdict_status_str(o->cls.status),
             verdict_reason_str(o->cls.reason), o->smtp.code,
             o->smtp.enhanced[0] != '\0' ? o->smtp.enhanced : "-",
             job->attempts + 1);
}

/*
 * Schedules another try of the results write, or gives up after
 * WRITE_TRIES: the probe entry then stays pending, and a worker takes it
 * over after claim_idle and probes again.
 */
static void
slot_retry_write(struct slot *sl, const char *why)
{
    if (sl->write_tries >= WRITE_TRIES) {
        struct log_ctx ctx = {.job = sl->entry, .domain = sl->item.domain};

        log_error(&ctx,
                  "ev=results_not_written st=%s tries=%d "
                  "next=takeover_after_claim_idle",
                  why, sl->write_tries);
        worker_slot_free(sl);
        return;
    }
    sl->state = SLOT_RETRYING;
    ev_timer_set(&sl->timer, WRITE_RETRY_S, 0.);
    ev_timer_start(sl->w->loop, &sl->timer);
}

static void
on_results_written(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct slot *sl = worker_ticket_take(arg);

    (void)rc;
    if (sl == NULL || sl->state != SLOT_WRITING)
        return;
    if (worker_reply_is_error(reply)) {
        struct log_ctx ctx = {.job = sl->entry, .domain = sl->item.domain};

        log_warn(&ctx,
                 "ev=results_write_failed st=eredis err=%.200s "
                 "try=%d",
                 worker_reply_error(reply), sl->write_tries);
        slot_retry_write(sl, "eredis");
        return;
    }
    for (size_t i = 0; i < sl->item.n_jobs; i++)
        log_job(sl, i, job_requeued(sl, i));
    worker_slot_free(sl);
}

static void
pack_catch_all_message(const char *domain, enum tristate flag, int64_t now,
                       msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    size_t len = strlen(domain);

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 6);
    msgpack_pack_str_body(&pk, "domain", 6);
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, domain, len);
    msgpack_pack_str(&pk, 9);
    msgpack_pack_str_body(&pk, "catch_all", 9);
    if (flag == TRI_YES)
        msgpack_pack_true(&pk);
    else if (flag == TRI_NO)
        msgpack_pack_false(&pk);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, 10);
    msgpack_pack_str_body(&pk, "checked_at", 10);
    msgpack_pack_int64(&pk, now);
}

/*
 * Adds the session's catch-all decision to the results write, which stores
 * it in the domain hash and publishes it in the same script: held jobs of
 * the domain wait for that message, and a separate command could be lost
 * while the results still landed.
 */
static void
add_catch_all(struct slot *sl, int64_t now, struct results_write *wr,
              char *hash, size_t hash_size, msgpack_sbuffer *message)
{
    struct worker *w = sl->w;
    enum tristate flag = smtp_session_catch_all(sl->sess);
    struct log_ctx ctx = {.job = sl->entry, .domain = sl->item.domain};

    wr->catch_all_value = flag == TRI_YES  ? "1"
                          : flag == TRI_NO ? "0"
                                           : "unknown";
    wr->catch_all_hash =
        keys_name(&w->keys, KEY_DOMAIN, sl->item.domain, hash, hash_size);
    pack_catch_all_message(sl->item.domain, flag, now, message);
    wr->catch_all_message = message->data;
    wr->catch_all_message_len = message->size;
    wr->checked_at = now;
    wr->domain_ttl = w->cfg->domain_ttl;
    log_info(&ctx, "ev=catch_all_decided catch_all=%s", wr->catch_all_value);
}

/* Encodes the jobs to retry into sb. Returns false when there are none;
 * an encoding failure turns retries off, so every job gets its result. */
static bool
prepare_requeue(struct slot *sl, msgpack_sbuffer *sb, int64_t *due)
{
    bool any = false;

    for (size_t i = 0; i < sl->item.n_jobs && !any; i++)
        any = job_requeued(sl, i);
    if (!any)
        return false;
    *due = encode_requeue(sl, sb);
    if (*due >= 0)
        return true;
    log_error(NULL, "ev=requeue_encode_failed st=eproto entry=%s", sl->entry);
    sl->no_requeue = true;
    return false;
}

static void
free_results(struct result *res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(res[i].mx);
        free(res[i].mx_ip);
    }
    free(res);
}

/* Sends the results of the finished session, acking the probe entry in
 * the same script; jobs to try later go to the delayed set there too. */
void
verdicts_write(struct slot *sl)
{
    struct worker *w = sl->w;
    size_t n = sl->item.n_jobs;
    struct job *jobs = xcalloc(n + 1, sizeof *jobs);
    struct result *res = xcalloc(n + 1, sizeof *res);
    const char *ack[1] = {sl->entry};
    struct results_write wr = {0};
    char hash[KEYS_NAME_MAX];
    msgpack_sbuffer message;
    msgpack_sbuffer sb;
    int64_t now = clock_wall_ms();
    struct ticket *ticket;
    enum status st;

    msgpack_sbuffer_init(&sb);
    if (prepare_requeue(sl, &sb, &wr.requeue_due_ms)) {
        wr.requeue = sb.data;
        wr.requeue_len = sb.size;
    }
    for (size_t i = 0; i < n; i++) {
        if (job_requeued(sl, i))
            continue;
        jobs[wr.n] = sl->item.jobs[i];
        fill_result(sl, i, now, &res[wr.n]);
        wr.n++;
    }
    wr.jobs = jobs;
    wr.results = res;
    wr.ack_stream = KEY_PROBES;
    wr.ack_group = KEYS_GROUP_WORKERS;
    wr.ack_ids = ack;
    wr.n_ack = 1;
    wr.result_ttl = w->cfg->result_ttl;
    msgpack_sbuffer_init(&message);
    if (smtp_session_tested_catch_all(sl->sess))
        add_catch_all(sl, now, &wr, hash, sizeof hash, &message);

    sl->write_tries++;
    sl->state = SLOT_WRITING;
    ticket = worker_ticket_new(sl);
    st = results_write(w->cmd, &w->keys, &wr, on_results_written, ticket);
    if (st != ST_OK)
        free(ticket);
    free_results(res, wr.n);
    free(jobs);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&message);
    if (st != ST_OK)
        slot_retry_write(sl, status_str(st));
}
