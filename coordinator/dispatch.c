/* SPDX-License-Identifier: MIT */
/*
 * Writes to Redis on the command connection. Each write owns its jobs until
 * the reply comes; then every jobs entry is released from the in-memory
 * set, and a failed write asks the coordinator to read its pending list
 * again, because the entries were not acked and are still there.
 */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "results.h"
#include "xalloc.h"

/* Jobs per results script call. */
#define DISPATCH_ANSWER_CHUNK 100

struct dispatch_write {
    struct coordinator *co;
    struct job *jobs;
    size_t n;
    struct result *results;      /* answers only */
    const char **ack_ids;        /* answers only; borrowed from jobs */
    char *domain;                /* probe items only, for logs */
    char *item_local;            /* probe items only */
};

static struct dispatch_write *
dispatch_write_new(struct coordinator *co, struct job *jobs, size_t n)
{
    struct dispatch_write *w = xcalloc(1, sizeof *w);

    w->co = co;
    w->n = n;
    w->jobs = xcalloc(n > 0 ? n : 1, sizeof *w->jobs);
    /* Shallow move: the strings now belong to w. */
    memcpy(w->jobs, jobs, n * sizeof *jobs);
    memset(jobs, 0, n * sizeof *jobs);
    co->writes++;
    return w;
}

/* Releases the entries, frees the write and lets a shutdown proceed. */
static void
dispatch_write_done(struct dispatch_write *w, bool ok)
{
    struct coordinator *co = w->co;

    for (size_t i = 0; i < w->n; i++) {
        coordinator_release_entry(co, w->jobs[i].entry, !ok);
        codec_job_fini(&w->jobs[i]);
    }
    free(w->jobs);
    free(w->results);
    free(w->ack_ids);
    free(w->domain);
    free(w->item_local);
    free(w);
    co->writes--;
    coordinator_on_write_done(co);
}

static bool
dispatch_exec_ok(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[1]->type == REDIS_REPLY_INTEGER;
}

static void
dispatch_on_exec(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct dispatch_write *w = arg;
    struct log_ctx lctx = {.domain = w->domain};
    bool ok = dispatch_exec_ok(reply);

    (void)rc;
    if (ok) {
        log_info(&lctx, "ev=probe_item item=%s jobs=%zu catchall_check=%s",
                 reply->element[0]->str, w->n,
                 w->item_local != NULL ? "yes" : "no");
    } else {
        log_warn(&lctx, "ev=probe_item_failed jobs=%zu st=eredis detail=%s",
                 w->n, reply == NULL ? "connection_lost"
                       : reply->type == REDIS_REPLY_ERROR ? "error_reply"
                                                          : "bad_reply");
    }
    dispatch_write_done(w, ok);
}

/* Queues MULTI, XADD, XACK, EXEC; false when the connection is down. */
static bool
dispatch_send_item(struct dispatch_write *w, const char *blob, size_t len)
{
    struct coordinator *co = w->co;
    char probes[KEYS_NAME_MAX];
    char jobs[KEYS_NAME_MAX];
    struct redis_args a;
    enum status st;

    keys_name(&co->keys, KEY_PROBES, NULL, probes, sizeof probes);
    keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
    if (redis_conn_commandf(co->rc_cmd, NULL, NULL, "MULTI") != ST_OK)
        return false;

    redis_args_init(&a);
    redis_args_add_str(&a, "XADD");
    redis_args_add_str(&a, probes);
    redis_args_add_str(&a, "*");
    redis_args_add_str(&a, "item");
    redis_args_add(&a, blob, len);
    st = redis_conn_command_args(co->rc_cmd, NULL, NULL, &a);
    redis_args_fini(&a);

    redis_args_init(&a);
    redis_args_add_str(&a, "XACK");
    redis_args_add_str(&a, jobs);
    redis_args_add_str(&a, KEYS_GROUP_COORDINATOR);
    for (size_t i = 0; i < w->n; i++)
        redis_args_add_str(&a, w->jobs[i].entry);
    if (st == ST_OK)
        st = redis_conn_command_args(co->rc_cmd, NULL, NULL, &a);
    redis_args_fini(&a);

    if (st == ST_OK)
        st = redis_conn_commandf(co->rc_cmd, dispatch_on_exec, w, "EXEC");
    /* A connection lost in the middle drops the open MULTI on the server,
     * so nothing half-done remains. */
    return st == ST_OK;
}

void
dispatch_probe_take(struct coordinator *co, const char *domain,
                    const struct facts *facts, struct job *jobs, size_t n,
                    const char *catchall_local, enum tristate catch_all)
{
    struct dispatch_write *w = dispatch_write_new(co, jobs, n);
    struct probe_item item;
    msgpack_sbuffer sb;
    bool sent = false;

    w->domain = xstrdup(domain);
    w->item_local = xstrdup(catchall_local);
    if (co->closing || !redis_conn_is_ready(co->rc_cmd)) {
        dispatch_write_done(w, false);
        return;
    }

    memset(&item, 0, sizeof item);
    item.domain = w->domain;
    item.mx = facts->mx;
    item.n_mx = facts->n_mx;
    item.jobs = w->jobs;
    item.n_jobs = w->n;
    item.catchall_local = w->item_local;
    item.catch_all = catch_all;
    item.first_ms = clock_wall_ms();

    msgpack_sbuffer_init(&sb);
    if (codec_encode_probe(&item, &sb) == ST_OK)
        sent = dispatch_send_item(w, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (!sent) {
        struct log_ctx lctx = {.domain = domain};

        log_warn(&lctx, "ev=probe_item_failed jobs=%zu st=eredis "
                 "detail=not_sent", n);
        dispatch_write_done(w, false);
    }
}

static void
dispatch_on_results(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct dispatch_write *w = arg;
    bool ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER;

    (void)rc;
    if (!ok) {
        log_warn(NULL, "ev=answer_failed jobs=%zu st=eredis detail=%s",
                 w->n, reply == NULL ? "connection_lost" : "error_reply");
    }
    dispatch_write_done(w, ok);
}

static void
dispatch_fill_result(struct result *res, const struct job *job,
                     enum verdict_reason reason, int64_t now)
{
    memset(res, 0, sizeof *res);
    res->id = job->id;
    res->email = job->email;
    res->address = job->address;
    res->status = verdict_reason_status(reason);
    res->reason = reason;
    res->catch_all = TRI_UNKNOWN;
    res->has_smtp = false;
    res->checked_at = now;
}

static void
dispatch_log_answer(const struct job *job, enum verdict_reason reason,
                    const char *detail)
{
    const char *at = job->address != NULL ? strrchr(job->address, '@')
                                          : NULL;
    struct log_ctx lctx = {.job = job->id,
                           .domain = at != NULL ? at + 1 : NULL};
    char quoted[LOG_QUOTE_MAX];

    log_info(&lctx, "ev=answered status=%s reason=%s detail=%s",
             verdict_status_str(verdict_reason_status(reason)),
             verdict_reason_str(reason),
             log_quote(quoted, sizeof quoted, detail != NULL ? detail : "-"));
}

/* Sends one chunk of direct answers; the write owns the chunk's jobs. */
static void
dispatch_answer_chunk(struct coordinator *co, struct job *jobs, size_t n,
                      enum verdict_reason reason, const char *detail)
{
    struct dispatch_write *w = dispatch_write_new(co, jobs, n);
    struct results_write rw;
    int64_t now = clock_wall_ms();

    if (co->closing || !redis_conn_is_ready(co->rc_cmd)) {
        dispatch_write_done(w, false);
        return;
    }
    w->results = xcalloc(n, sizeof *w->results);
    w->ack_ids = xcalloc(n, sizeof *w->ack_ids);
    for (size_t i = 0; i < n; i++) {
        dispatch_fill_result(&w->results[i], &w->jobs[i], reason, now);
        w->ack_ids[i] = w->jobs[i].entry;
        dispatch_log_answer(&w->jobs[i], reason, detail);
    }

    memset(&rw, 0, sizeof rw);
    rw.jobs = w->jobs;
    rw.results = w->results;
    rw.n = n;
    rw.ack_stream = KEY_JOBS;
    rw.ack_group = KEYS_GROUP_COORDINATOR;
    rw.ack_ids = w->ack_ids;
    rw.n_ack = n;
    rw.result_ttl = co->cfg->result_ttl;
    if (results_write(co->rc_cmd, &co->keys, &rw, dispatch_on_results, w) !=
        ST_OK) {
        log_warn(NULL, "ev=answer_failed jobs=%zu st=eredis detail=not_sent",
                 n);
        dispatch_write_done(w, false);
    }
}

void
dispatch_answer_take(struct coordinator *co, struct job *jobs, size_t n,
                     enum verdict_reason reason, const char *detail)
{
    for (size_t off = 0; off < n; off += DISPATCH_ANSWER_CHUNK) {
        size_t k = n - off;

        if (k > DISPATCH_ANSWER_CHUNK)
            k = DISPATCH_ANSWER_CHUNK;
        dispatch_answer_chunk(co, jobs + off, k, reason, detail);
    }
}

void
dispatch_dead_letter_take(struct coordinator *co, struct job *job,
                          long long deliveries)
{
    char dead[KEYS_NAME_MAX];
    char jobs[KEYS_NAME_MAX];
    struct log_ctx lctx = {.job = job->id};

    log_warn(&lctx, "ev=dead_letter entry=%s deliveries=%lld", job->entry,
             deliveries);
    if (!co->closing && redis_conn_is_ready(co->rc_cmd)) {
        keys_name(&co->keys, KEY_DEAD, NULL, dead, sizeof dead);
        keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
        /* The copy goes first: if the answer fails, the entry stays
         * pending and a later takeover copies it again, which is harmless
         * for a dead-letter stream read by people. */
        redis_conn_commandf(co->rc_cmd, NULL, NULL,
                            "XADD %s * stream %s entry %s id %s email %s "
                            "deliveries %lld",
                            dead, jobs, job->entry, job->id, job->email,
                            deliveries);
    }
    dispatch_answer_take(co, job, 1, VR_TEMPORARY_FAILURE,
                         "delivered_too_often");
}
