/* SPDX-License-Identifier: MIT */
/*
 * The worker loop. A fixed table of session slots bounds the work in
 * flight; each slot walks FREE -> ASKING (per-MX limit) -> PROBING (SMTP
 * session) -> WRITING (results script) -> FREE, with WAITING when the limiter
 * returned "not now" and RETRYING when the results could not be written yet.
 * Redis answers carry a ticket (slot index and generation), so an answer
 * for a slot that was reused in the meantime is dropped.
 */
#include "worker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "codec.h"
#include "conn.h"
#include "keys.h"
#include "log.h"
#include "ratelimit.h"
#include "redis_conn.h"
#include "results.h"
#include "smtp_session.h"
#include "xalloc.h"

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
    SLOT_ASKING,  /* ratelimit_take() in flight */
    SLOT_WAITING, /* limit denied; timer before asking again */
    SLOT_PROBING, /* SMTP session running */
    SLOT_WRITING, /* results script in flight */
    SLOT_RETRYING /* timer before writing the results again */
};

struct worker;

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
    struct slot *slots;
    size_t n_slots;
    size_t n_busy;
    bool reading;
    bool read_own_pending; /* the first read resumes our pending items */
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

static void read_more(struct worker *w);
static void create_group(struct worker *w);
static void schedule_read_retry(struct worker *w);
static void slot_ask_limit(struct slot *sl);
static void slot_write(struct slot *sl);

/* ---- small helpers ---- */

static uint64_t
worker_random(struct worker *w)
{
    /* xorshift64: jitter only, nothing secret depends on it. */
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static struct ticket *
ticket_new(struct slot *sl)
{
    struct ticket *t = xmalloc(sizeof *t);

    t->w = sl->w;
    t->index = sl->index;
    t->gen = sl->gen;
    return t;
}

/* Returns the slot of t, or NULL when the slot moved on; frees t. */
static struct slot *
ticket_take(struct ticket *t)
{
    struct slot *sl = &t->w->slots[t->index];
    bool current = sl->gen == t->gen && !t->w->closing;

    free(t);
    return current ? sl : NULL;
}

static bool
reply_is_error(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_ERROR;
}

static const char *
reply_error(const redisReply *r)
{
    if (r == NULL)
        return "no reply";
    return r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
}

static struct slot *
find_free_slot(struct worker *w)
{
    for (size_t i = 0; i < w->n_slots; i++) {
        if (w->slots[i].state == SLOT_FREE)
            return &w->slots[i];
    }
    return NULL;
}

static bool
entry_running(const struct worker *w, const char *id)
{
    for (size_t i = 0; i < w->n_slots; i++) {
        if (w->slots[i].state != SLOT_FREE &&
            strcmp(w->slots[i].entry, id) == 0)
            return true;
    }
    return false;
}

/* The next configured source address of ip's family, round robin; NULL
 * when none is configured for that family. */
static const char *
pick_source(struct worker *w, const char *ip)
{
    bool v6 = conn_ip_is_v6(ip);

    for (size_t i = 0; i < w->n_sources; i++) {
        size_t k = (w->source_next + i) % w->n_sources;

        if (conn_ip_is_v6(w->sources[k]) == v6) {
            w->source_next = k + 1;
            return w->sources[k];
        }
    }
    return NULL;
}

/* ---- slot lifecycle ---- */

static void
release_limit(struct slot *sl)
{
    if (sl->limit_host == NULL)
        return;
    if (ratelimit_release(&sl->w->rl, sl->limit_host, sl->token) != ST_OK)
        log_warn(NULL, "ev=ratelimit_release_failed st=eredis entry=%s",
                 sl->entry);
    sl->limit_host = NULL;
}

/* Frees everything the slot holds. Its Redis entry stays as it is: acked
 * when the results were written, else pending for a takeover. */
static void
slot_free(struct slot *sl)
{
    struct worker *w = sl->w;

    assert(sl->state != SLOT_FREE);
    ev_timer_stop(w->loop, &sl->timer);
    release_limit(sl);
    smtp_session_free(sl->sess);
    sl->sess = NULL;
    conn_close(&sl->conn);
    conn_set_timer(&sl->conn, 0);
    codec_probe_fini(&sl->item);
    sl->entry[0] = '\0';
    sl->state = SLOT_FREE;
    sl->gen++;
    w->n_busy--;
    if (w->stopping && w->n_busy == 0) {
        log_info(NULL, "ev=stopped why=sessions_finished");
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    read_more(w);
}

static void
slot_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct slot *sl = t->data;

    (void)loop;
    (void)revents;
    if (sl->state == SLOT_WAITING)
        slot_ask_limit(sl);
    else if (sl->state == SLOT_RETRYING)
        slot_write(sl);
}

/* ---- transport: conn events into the session ---- */

static void
t_connect(void *ctx, const char *ip)
{
    struct slot *sl = ctx;

    conn_connect(&sl->conn, ip, pick_source(sl->w, ip));
}

static enum status
t_send(void *ctx, const char *data, size_t len)
{
    struct slot *sl = ctx;

    return conn_send(&sl->conn, data, len);
}

static void
t_close(void *ctx)
{
    struct slot *sl = ctx;

    conn_close(&sl->conn);
}

static void
t_set_timer(void *ctx, double seconds)
{
    struct slot *sl = ctx;

    conn_set_timer(&sl->conn, seconds);
}

static void
c_connected(void *arg)
{
    struct slot *sl = arg;

    smtp_session_on_connected(sl->sess);
}

static void
c_connect_failed(void *arg, enum status st, int err)
{
    struct slot *sl = arg;

    smtp_session_on_connect_failed(sl->sess, st, err);
}

static void
c_data(void *arg, const char *data, size_t len)
{
    struct slot *sl = arg;

    smtp_session_on_data(sl->sess, data, len);
}

static void
c_closed(void *arg, enum status st, int err)
{
    struct slot *sl = arg;

    smtp_session_on_closed(sl->sess, st, err);
}

static void
c_timeout(void *arg)
{
    struct slot *sl = arg;

    smtp_session_on_timeout(sl->sess);
}

static const struct conn_handlers slot_conn_handlers = {
    .on_connected = c_connected,
    .on_connect_failed = c_connect_failed,
    .on_data = c_data,
    .on_closed = c_closed,
    .on_timeout = c_timeout,
};

/* ---- results ---- */

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
 * temporary answer (greylisting, 4xx) with attempts left in the schedule. */
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
        slot_free(sl);
        return;
    }
    sl->state = SLOT_RETRYING;
    ev_timer_set(&sl->timer, WRITE_RETRY_S, 0.);
    ev_timer_start(sl->w->loop, &sl->timer);
}

static void
on_results_written(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct slot *sl = ticket_take(arg);

    (void)rc;
    if (sl == NULL || sl->state != SLOT_WRITING)
        return;
    if (reply_is_error(reply)) {
        struct log_ctx ctx = {.job = sl->entry, .domain = sl->item.domain};

        log_warn(&ctx,
                 "ev=results_write_failed st=eredis err=%.200s "
                 "try=%d",
                 reply_error(reply), sl->write_tries);
        slot_retry_write(sl, "eredis");
        return;
    }
    for (size_t i = 0; i < sl->item.n_jobs; i++)
        log_job(sl, i, job_requeued(sl, i));
    slot_free(sl);
}

/*
 * Writes the catch-all decision into the domain hash and publishes it, in
 * one script so the hash and the message agree. Held jobs of the domain
 * wait for this message, so it goes out even when the answer is unknown.
 */
static const char catch_all_script[] =
    "redis.call('HSET', KEYS[1], 'catch_all', ARGV[1], 'checked_at', "
    "ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'catchall_pending')\n"
    "if redis.call('TTL', KEYS[1]) < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "end\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[4])\n"
    "return 1\n";

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

static void
publish_catch_all(struct slot *sl, int64_t now)
{
    struct worker *w = sl->w;
    enum tristate flag = smtp_session_catch_all(sl->sess);
    const char *value = flag == TRI_YES  ? "1"
                        : flag == TRI_NO ? "0"
                                         : "unknown";
    char hash[KEYS_NAME_MAX];
    char channel[KEYS_NAME_MAX];
    struct redis_args a;
    msgpack_sbuffer sb;
    struct log_ctx ctx = {.job = sl->entry, .domain = sl->item.domain};

    keys_name(&w->keys, KEY_DOMAIN, sl->item.domain, hash, sizeof hash);
    keys_name(&w->keys, KEY_CATCHALL, NULL, channel, sizeof channel);
    msgpack_sbuffer_init(&sb);
    pack_catch_all_message(sl->item.domain, flag, now, &sb);
    redis_args_init(&a);
    redis_args_add_str(&a, "EVAL");
    redis_args_add_str(&a, catch_all_script);
    redis_args_add_str(&a, "2");
    redis_args_add_str(&a, hash);
    redis_args_add_str(&a, channel);
    redis_args_add_str(&a, value);
    redis_args_add_int(&a, (long long)now);
    redis_args_add_int(&a, w->cfg->domain_ttl);
    redis_args_add(&a, sb.data, sb.size);
    if (redis_conn_command_args(w->cmd, NULL, NULL, &a) != ST_OK)
        log_warn(&ctx, "ev=catch_all_publish_failed st=eredis");
    else
        log_info(&ctx, "ev=catch_all_decided catch_all=%s", value);
    redis_args_fini(&a);
    msgpack_sbuffer_destroy(&sb);
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
static void
slot_write(struct slot *sl)
{
    struct worker *w = sl->w;
    size_t n = sl->item.n_jobs;
    struct job *jobs = xcalloc(n + 1, sizeof *jobs);
    struct result *res = xcalloc(n + 1, sizeof *res);
    const char *ack[1] = {sl->entry};
    struct results_write wr = {0};
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

    sl->write_tries++;
    sl->state = SLOT_WRITING;
    ticket = ticket_new(sl);
    st = results_write(w->cmd, &w->keys, &wr, on_results_written, ticket);
    if (st != ST_OK)
        free(ticket);
    free_results(res, wr.n);
    free(jobs);
    msgpack_sbuffer_destroy(&sb);
    if (st != ST_OK)
        slot_retry_write(sl, status_str(st));
}

/* ---- running an item ---- */

static void
slot_on_session_done(struct smtp_session *s, void *arg)
{
    struct slot *sl = arg;

    (void)s;
    /* The session is still on the stack: it is freed once the results are
     * written, from the Redis callback. */
    release_limit(sl);
    if (smtp_session_tested_catch_all(sl->sess))
        publish_catch_all(sl, clock_wall_ms());
    slot_write(sl);
}

static void
slot_start_session(struct slot *sl)
{
    struct worker *w = sl->w;

    sl->transport.connect = t_connect;
    sl->transport.send = t_send;
    sl->transport.close = t_close;
    sl->transport.set_timer = t_set_timer;
    sl->transport.ctx = sl;
    sl->started_ms = clock_wall_ms();
    sl->state = SLOT_PROBING;
    sl->sess = smtp_session_new(&sl->item, &w->scfg, &sl->transport, sl->entry,
                                slot_on_session_done, sl);
    smtp_session_start(sl->sess);
}

/* Asks again after a jittered pause, so waiting workers do not all come
 * back in the same millisecond. */
static void
slot_wait(struct slot *sl)
{
    double delay = 1.0 + (double)(worker_random(sl->w) % 2000) / 1000.0;

    sl->state = SLOT_WAITING;
    ev_timer_set(&sl->timer, delay, 0.);
    ev_timer_start(sl->w->loop, &sl->timer);
}

static void
on_limit_answer(void *arg, enum ratelimit_answer answer)
{
    struct slot *sl = ticket_take(arg);

    if (sl == NULL || sl->state != SLOT_ASKING)
        return;
    if (answer == RL_GRANTED)
        sl->limit_host = sl->item.mx[0].name;
    if (sl->w->stopping) {
        slot_free(sl);
        return;
    }
    if (answer == RL_GRANTED) {
        slot_start_session(sl);
        return;
    }
    log_debug(NULL, "ev=mx_limited entry=%s mx=%s answer=%s", sl->entry,
              sl->item.mx[0].name, ratelimit_answer_str(answer));
    slot_wait(sl);
}

/*
 * NOTE: the limit is taken for the first MX host only; a session that
 * falls back to another host counts against the first one's limits.
 */
static void
slot_ask_limit(struct slot *sl)
{
    struct worker *w = sl->w;
    struct ticket *t;

    if (sl->item.n_mx == 0) {
        slot_start_session(sl); /* the session reports mx_unreachable */
        return;
    }
    sl->state = SLOT_ASKING;
    if (snprintf(sl->token, sizeof sl->token, "%s:%llu", w->id, ++w->seq) < 0)
        sl->token[0] = '\0';
    t = ticket_new(sl);
    if (ratelimit_take(&w->rl, sl->item.mx[0].name, sl->token, clock_wall_ms(),
                       on_limit_answer, t) != ST_OK) {
        free(t);
        slot_wait(sl);
    }
}

/* ---- dead letters ---- */

/* Moves an entry that cannot be worked on to the dead stream and acks it,
 * both inside one MULTI. */
static void
dead_letter(struct worker *w, const char *id, const char *data, size_t len,
            const char *why)
{
    char dead[KEYS_NAME_MAX];
    char probes[KEYS_NAME_MAX];

    keys_name(&w->keys, KEY_DEAD, NULL, dead, sizeof dead);
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    log_error(NULL, "ev=dead_letter entry=%s why=%s", id, why);
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
static void
answer_exhausted(struct worker *w, const char *id, struct probe_item *item)
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

/* ---- taking entries ---- */

static const redisReply *
entry_field(const redisReply *fields, const char *name)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return fields->element[i + 1];
    }
    return NULL;
}

/*
 * Starts work on one stream entry ([id, [field, value, ...]]) delivered
 * deliveries times (0 when not known). Returns false when no slot is free,
 * in which case the entry stays pending for a later takeover.
 */
static bool
take_entry(struct worker *w, const redisReply *entry, long long deliveries)
{
    const redisReply *id;
    const redisReply *blob;
    struct slot *sl;
    struct probe_item item;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return true;
    id = entry->element[0];
    if (id->len >= ENTRY_ID_MAX || entry_running(w, id->str))
        return true;
    blob = entry_field(entry->element[1], "item");
    if (blob == NULL || blob->type != REDIS_REPLY_STRING) {
        /* Deleted from the stream or not ours: nothing to probe. */
        dead_letter(w, id->str, "", 0, "no_item_field");
        return true;
    }
    memset(&item, 0, sizeof item);
    if (codec_decode_probe(blob->str, blob->len, &item) != ST_OK) {
        dead_letter(w, id->str, blob->str, blob->len, "undecodable");
        return true;
    }
    if (w->cfg->max_deliveries > 0 && deliveries > w->cfg->max_deliveries) {
        answer_exhausted(w, id->str, &item);
        dead_letter(w, id->str, blob->str, blob->len, "max_deliveries");
        codec_probe_fini(&item);
        return true;
    }
    sl = find_free_slot(w);
    if (sl == NULL) {
        codec_probe_fini(&item);
        return false;
    }
    memcpy(sl->entry, id->str, id->len + 1);
    sl->item = item; /* the slot owns the item now */
    sl->write_tries = 0;
    sl->no_requeue = false;
    sl->limit_host = NULL;
    w->n_busy++;
    slot_ask_limit(sl);
    return true;
}

/* Takes every entry of an XREADGROUP reply: [[stream, [entry...]]]. */
static void
take_read_reply(struct worker *w, const redisReply *reply)
{
    for (size_t s = 0; s < reply->elements; s++) {
        const redisReply *stream = reply->element[s];
        const redisReply *entries;

        if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2)
            continue;
        entries = stream->element[1];
        if (entries->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i < entries->elements; i++)
            take_entry(w, entries->element[i], 0);
    }
}

static void
on_read(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)rc;
    w->reading = false;
    if (w->closing)
        return;
    if (reply_is_error(reply)) {
        if (reply != NULL && strncmp(reply->str, "NOGROUP", 7) == 0) {
            /* The stream was deleted: create the group again. */
            w->group_ready = false;
            create_group(w);
        } else if (reply != NULL) {
            log_warn(NULL, "ev=read_failed st=eredis err=%.200s",
                     reply_error(reply));
        }
        schedule_read_retry(w);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY)
        take_read_reply(w, reply);
    /* Our own pending entries (left by a previous run under the same id)
     * are read once, at start; after that only new ones. */
    w->read_own_pending = false;
    read_more(w);
}

/* Reads (or creates the group) again in a second; libev forbids
 * re-arming a timer that is already running, hence the check. */
static void
schedule_read_retry(struct worker *w)
{
    if (ev_is_active(&w->read_retry))
        return;
    ev_timer_set(&w->read_retry, 1.0, 0.);
    ev_timer_start(w->loop, &w->read_retry);
}

static void
read_more(struct worker *w)
{
    size_t free_slots = w->n_slots - w->n_busy;
    char probes[KEYS_NAME_MAX];
    enum status st;

    if (w->stopping || w->reading || free_slots == 0 || !w->group_ready ||
        !redis_conn_is_ready(w->rd) || ev_is_active(&w->read_retry))
        return;
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    st = redis_conn_commandf(w->rd, on_read, w,
                             "XREADGROUP GROUP %s %s COUNT %lld BLOCK %d "
                             "STREAMS %s %s",
                             KEYS_GROUP_WORKERS, w->id, (long long)free_slots,
                             READ_BLOCK_MS, probes,
                             w->read_own_pending ? "0" : ">");
    if (st == ST_OK) {
        w->reading = true;
        return;
    }
    log_warn(NULL, "ev=read_not_sent st=%s", status_str(st));
    schedule_read_retry(w);
}

static void
on_read_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;

    (void)loop;
    (void)revents;
    if (!w->group_ready)
        create_group(w);
    else
        read_more(w);
}

/* ---- takeover of idle entries and claim refresh ---- */

/* The entries an XPENDING reply listed, with their delivery counts. */
struct claim_request {
    struct worker *w;
    size_t n;
    char (*ids)[ENTRY_ID_MAX];
    long long *deliveries;
};

static void
claim_request_free(struct claim_request *cr)
{
    free(cr->ids);
    free(cr->deliveries);
    free(cr);
}

static long long
claimed_deliveries(const struct claim_request *cr, const char *id)
{
    for (size_t i = 0; i < cr->n; i++) {
        if (strcmp(cr->ids[i], id) == 0)
            return cr->deliveries[i] + 1; /* XCLAIM counted one more */
    }
    return 0;
}

static void
on_claimed(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct claim_request *cr = arg;
    struct worker *w = cr->w;

    (void)rc;
    if (w->closing || reply_is_error(reply) ||
        reply->type != REDIS_REPLY_ARRAY) {
        if (!w->closing)
            log_warn(NULL, "ev=claim_failed st=eredis err=%.200s",
                     reply_error(reply));
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
        take_entry(w, e, n);
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
            entry_running(w, row->element[0]->str))
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
    char probes[KEYS_NAME_MAX];

    (void)rc;
    if (w->closing || w->stopping || reply_is_error(reply) ||
        reply->type != REDIS_REPLY_ARRAY)
        return;
    cr = claim_request_from(w, reply);
    if (cr->n == 0) {
        claim_request_free(cr);
        return;
    }
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    redis_args_init(&a);
    redis_args_add_str(&a, "XCLAIM");
    redis_args_add_str(&a, probes);
    redis_args_add_str(&a, KEYS_GROUP_WORKERS);
    redis_args_add_str(&a, w->id);
    /* The same idle bound again: an entry its owner refreshed in the
     * meantime is left alone. */
    redis_args_add_int(&a, (long long)(w->cfg->claim_idle * 1000));
    for (size_t i = 0; i < cr->n; i++)
        redis_args_add_str(&a, cr->ids[i]);
    if (redis_conn_command_args(w->cmd, on_claimed, cr, &a) != ST_OK)
        claim_request_free(cr);
    redis_args_fini(&a);
}

static void
on_claim_timer(struct ev_loop *loop, ev_timer *t, int revents)
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
static void
on_refresh_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    char probes[KEYS_NAME_MAX];
    struct redis_args a;
    int64_t now = clock_wall_ms();

    (void)loop;
    (void)revents;
    if (w->n_busy == 0 || !redis_conn_is_ready(w->cmd))
        return;
    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    redis_args_init(&a);
    redis_args_add_str(&a, "XCLAIM");
    redis_args_add_str(&a, probes);
    redis_args_add_str(&a, KEYS_GROUP_WORKERS);
    redis_args_add_str(&a, w->id);
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

/* ---- connections ---- */

static void
on_group_created(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct worker *w = arg;

    (void)rc;
    if (w->closing || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        log_warn(NULL, "ev=group_create_failed st=eredis err=%.200s",
                 reply->str);
        schedule_read_retry(w);
        return;
    }
    w->group_ready = true;
    read_more(w);
}

/* Creates the workers group, starting at 0 so that items added before any
 * worker existed are read too; BUSYGROUP (it exists) is fine. */
static void
create_group(struct worker *w)
{
    char probes[KEYS_NAME_MAX];

    keys_name(&w->keys, KEY_PROBES, NULL, probes, sizeof probes);
    if (redis_conn_commandf(w->cmd, on_group_created, w,
                            "XGROUP CREATE %s %s 0 MKSTREAM", probes,
                            KEYS_GROUP_WORKERS) == ST_OK)
        return;
    /* Not connected: on_cmd_ready() tries again, and so does this timer. */
    schedule_read_retry(w);
}

static void
on_cmd_ready(struct redis_conn *rc, void *arg)
{
    (void)rc;
    create_group(arg);
}

static void
on_rd_ready(struct redis_conn *rc, void *arg)
{
    struct worker *w = arg;

    (void)rc;
    w->reading = false;
    read_more(w);
}

/* ---- creation and teardown ---- */

static bool
parse_sources(struct worker *w, const char *list, char *err, size_t errsize)
{
    char *copy = xstrdup(list);
    char *p = copy;

    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        char *item = p;

        p += len;
        if (*p == ',')
            *p++ = '\0';
        item[len] = '\0';
        if (*item == '\0')
            continue;
        w->sources =
            xrealloc(w->sources, (w->n_sources + 1) * sizeof *w->sources);
        w->sources[w->n_sources++] = xstrdup(item);
    }
    free(copy);
    for (size_t i = 0; i < w->n_sources; i++) {
        unsigned char buf[16];
        int family = conn_ip_is_v6(w->sources[i]) ? AF_INET6 : AF_INET;

        if (inet_pton(family, w->sources[i], buf) != 1) {
            snprintf(err, errsize,
                     "invalid source address \"%s\" in "
                     "source_addrs: expected IPv4 or IPv6 addresses "
                     "separated by commas",
                     w->sources[i]);
            return false;
        }
    }
    return true;
}

static void
session_config_init(struct worker *w, const char *helo_name)
{
    const struct config *cfg = w->cfg;

    w->scfg.helo_name = helo_name;
    w->scfg.sender = cfg->sender != NULL ? cfg->sender : "";
    w->scfg.connect_timeout = cfg->connect_timeout;
    w->scfg.greeting_timeout = cfg->greeting_timeout;
    w->scfg.ehlo_timeout = cfg->ehlo_timeout;
    w->scfg.mail_timeout = cfg->mail_timeout;
    w->scfg.rcpt_timeout = cfg->rcpt_timeout;
    w->scfg.quit_timeout = cfg->quit_timeout;
}

static void
slots_init(struct worker *w)
{
    w->n_slots = w->cfg->sessions > 0 ? (size_t)w->cfg->sessions : 1;
    w->slots = xcalloc(w->n_slots, sizeof *w->slots);
    for (size_t i = 0; i < w->n_slots; i++) {
        struct slot *sl = &w->slots[i];

        sl->w = w;
        sl->index = i;
        sl->state = SLOT_FREE;
        conn_init(&sl->conn, w->loop, w->cfg->smtp_port, &slot_conn_handlers,
                  sl);
        ev_init(&sl->timer, slot_on_timer);
        sl->timer.data = sl;
    }
}

static void
timers_init(struct worker *w)
{
    double claim = w->cfg->claim_idle > 0 ? w->cfg->claim_idle : 60;

    ev_init(&w->read_retry, on_read_retry);
    w->read_retry.data = w;
    ev_timer_init(&w->claim_timer, on_claim_timer, claim / 2, claim / 2);
    w->claim_timer.data = w;
    ev_timer_start(w->loop, &w->claim_timer);
    ev_timer_init(&w->refresh_timer, on_refresh_timer, claim / 3, claim / 3);
    w->refresh_timer.data = w;
    ev_timer_start(w->loop, &w->refresh_timer);
}

struct worker *
worker_new(struct ev_loop *loop, const struct config *cfg, const char *id,
           const char *helo_name, char *err, size_t errsize)
{
    struct worker *w = xcalloc(1, sizeof *w);
    struct redis_addr addr;

    w->loop = loop;
    w->cfg = cfg;
    w->id = xstrdup(id);
    w->rng = (uint64_t)clock_mono_ms() ^ ((uint64_t)getpid() << 32) ^ 1u;
    w->read_own_pending = true;
    keys_init(&w->keys, cfg->prefix);
    if (config_parse_redis(cfg->redis, &addr, err, errsize) != ST_OK ||
        !parse_sources(w, cfg->source_addrs != NULL ? cfg->source_addrs : "",
                       err, errsize)) {
        worker_free(w);
        return NULL;
    }
    session_config_init(w, helo_name);
    slots_init(w);
    timers_init(w);
    w->cmd = redis_conn_new(loop, &addr, "cmd", 10.0, on_cmd_ready, w);
    w->rd = redis_conn_new(loop, &addr, "read", READ_BLOCK_MS / 1000.0 + 5.0,
                           on_rd_ready, w);
    w->rl.rc = w->cmd;
    w->rl.keys = &w->keys;
    w->rl.concurrency = cfg->mx_concurrency;
    w->rl.rate = cfg->mx_rate;
    /* Renewed every claim_idle/3 while the session runs. */
    w->rl.lease_ms = (int64_t)(cfg->claim_idle * 1000) + 60000;
    log_info(NULL, "ev=started sessions=%zu port=%d sources=%zu", w->n_slots,
             cfg->smtp_port, w->n_sources);
    return w;
}

void
worker_stop(struct worker *w)
{
    if (w->stopping) {
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    w->stopping = true;
    ev_timer_stop(w->loop, &w->claim_timer);
    ev_timer_stop(w->loop, &w->read_retry);
    log_info(NULL, "ev=stopping sessions=%zu", w->n_busy);
    for (size_t i = 0; i < w->n_slots; i++) {
        if (w->slots[i].state == SLOT_WAITING)
            slot_free(&w->slots[i]);
    }
    if (w->n_busy == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

void
worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    /* Redis first: its pending callbacks fire with NULL and may still look
     * at the slots. */
    w->stopping = true;
    w->closing = true;
    redis_conn_free(w->rd);
    redis_conn_free(w->cmd);
    for (size_t i = 0; w->slots != NULL && i < w->n_slots; i++) {
        struct slot *sl = &w->slots[i];

        ev_timer_stop(w->loop, &sl->timer);
        smtp_session_free(sl->sess);
        conn_fini(&sl->conn);
        if (sl->state != SLOT_FREE)
            codec_probe_fini(&sl->item);
    }
    ev_timer_stop(w->loop, &w->claim_timer);
    ev_timer_stop(w->loop, &w->refresh_timer);
    ev_timer_stop(w->loop, &w->read_retry);
    for (size_t i = 0; i < w->n_sources; i++)
        free(w->sources[i]);
    free(w->sources);
    free(w->slots);
    free(w->id);
    free(w);
}
