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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "claims.h"
#include "clock.h"
#include "log.h"
#include "verdicts.h"
#include "worker_internal.h"
#include "xalloc.h"

static void read_more(struct worker *w);
static void create_group(struct worker *w);
static void schedule_read_retry(struct worker *w);
static void slot_ask_limit(struct slot *sl);

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

struct ticket *
worker_ticket_new(struct slot *sl)
{
    struct ticket *t = xmalloc(sizeof *t);

    t->w = sl->w;
    t->index = sl->index;
    t->gen = sl->gen;
    return t;
}

/* Returns the slot of t, or NULL when the slot moved on; frees t. */
struct slot *
worker_ticket_take(struct ticket *t)
{
    struct slot *sl = &t->w->slots[t->index];
    bool current = sl->gen == t->gen && !t->w->closing;

    free(t);
    return current ? sl : NULL;
}

bool
worker_reply_is_error(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_ERROR;
}

const char *
worker_reply_error(const redisReply *r)
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

bool
worker_entry_running(const struct worker *w, const char *id)
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
void
worker_slot_free(struct slot *sl)
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
        verdicts_write(sl);
}

/* ---- transport: conn events into the session ---- */

/* The MX host whose lease the slot needs: the host its session is at, or
 * the first one before the session starts. */
static const char *
slot_limit_target(const struct slot *sl)
{
    if (sl->sess != NULL)
        return smtp_session_mx(sl->sess);
    return sl->item.mx[0].name;
}

static void
t_connect(void *ctx, const char *ip)
{
    struct slot *sl = ctx;
    const char *host = smtp_session_mx(sl->sess);

    /* A fallback to another MX host runs against that host's limits, not
     * the first one's: give back the lease held and hold the connection
     * until the new host's lease is granted. The session's connect timer
     * starts again with the connection itself. */
    if (host != NULL &&
        (sl->limit_host == NULL || strcmp(host, sl->limit_host) != 0)) {
        release_limit(sl);
        conn_set_timer(&sl->conn, 0);
        sl->held_ip = ip;
        slot_ask_limit(sl);
        return;
    }
    conn_connect(&sl->conn, ip, pick_source(sl->w, ip));
}

/* The lease of a fallback host came: the held connection goes out. */
static void
slot_resume_connect(struct slot *sl)
{
    const char *ip = sl->held_ip;

    sl->held_ip = NULL;
    sl->state = SLOT_PROBING;
    conn_set_timer(&sl->conn, sl->w->scfg.connect_timeout);
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

static enum status
t_starttls(void *ctx, const char *sni)
{
    struct slot *sl = ctx;

    return conn_starttls(&sl->conn, sl->w->tls, sni);
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

static void
c_tls_done(void *arg, enum status st, const char *info)
{
    struct slot *sl = arg;

    smtp_session_on_tls_done(sl->sess, st, info);
}

static const struct conn_handlers slot_conn_handlers = {
    .on_connected = c_connected,
    .on_connect_failed = c_connect_failed,
    .on_data = c_data,
    .on_closed = c_closed,
    .on_timeout = c_timeout,
    .on_tls_done = c_tls_done,
};

/* ---- running an item ---- */

static void
slot_on_session_done(struct smtp_session *s, void *arg)
{
    struct slot *sl = arg;

    (void)s;
    /* The session is still on the stack: it is freed once the results are
     * written, from the Redis callback. */
    release_limit(sl);
    verdicts_write(sl);
}

static void
slot_start_session(struct slot *sl)
{
    struct worker *w = sl->w;

    sl->transport.connect = t_connect;
    sl->transport.send = t_send;
    sl->transport.close = t_close;
    sl->transport.set_timer = t_set_timer;
    sl->transport.starttls = t_starttls;
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
    struct slot *sl = worker_ticket_take(arg);

    if (sl == NULL || sl->state != SLOT_ASKING)
        return;
    if (answer == RL_GRANTED)
        sl->limit_host = slot_limit_target(sl);
    if (sl->w->stopping) {
        worker_slot_free(sl);
        return;
    }
    if (answer == RL_GRANTED && sl->sess == NULL) {
        slot_start_session(sl);
        return;
    }
    if (answer == RL_GRANTED) {
        slot_resume_connect(sl);
        return;
    }
    log_debug(NULL, "ev=mx_limited entry=%s mx=%s answer=%s fallback=%s",
              sl->entry, slot_limit_target(sl), ratelimit_answer_str(answer),
              sl->sess != NULL ? "yes" : "no");
    slot_wait(sl);
}

/*
 * Asks for a lease on the MX host the slot needs: the first host before
 * its session starts, the fallback host when the session moves on to
 * another one. "Not now" waits and asks again, either way.
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
    t = worker_ticket_new(sl);
    if (ratelimit_take(&w->rl, slot_limit_target(sl), sl->token,
                       clock_wall_ms(), on_limit_answer, t) != ST_OK) {
        free(t);
        slot_wait(sl);
    }
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
bool
worker_take_entry(struct worker *w, const redisReply *entry,
                  long long deliveries)
{
    const redisReply *id;
    const redisReply *blob;
    struct slot *sl;
    struct probe_item item;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return true;
    id = entry->element[0];
    if (id->len >= ENTRY_ID_MAX || worker_entry_running(w, id->str))
        return true;
    blob = entry_field(entry->element[1], "item");
    if (blob == NULL || blob->type != REDIS_REPLY_STRING) {
        /* Deleted from the stream or not ours: nothing to probe. */
        claims_dead_letter(w, id->str, "", 0, "no_item_field");
        return true;
    }
    memset(&item, 0, sizeof item);
    if (codec_decode_probe(blob->str, blob->len, &item) != ST_OK) {
        claims_dead_letter(w, id->str, blob->str, blob->len, "undecodable");
        return true;
    }
    if (w->cfg->max_deliveries > 0 && deliveries > w->cfg->max_deliveries) {
        claims_answer_exhausted(w, id->str, &item);
        claims_dead_letter(w, id->str, blob->str, blob->len, "max_deliveries");
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
    sl->held_ip = NULL;
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
            worker_take_entry(w, entries->element[i],
                              claims_own_deliveries(w, entries->element[i]));
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
    if (worker_reply_is_error(reply)) {
        claims_own_done(w);
        if (reply != NULL && strncmp(reply->str, "NOGROUP", 7) == 0) {
            /* The stream was deleted: create the group again. */
            w->group_ready = false;
            create_group(w);
        } else if (reply != NULL) {
            log_warn(NULL, "ev=read_failed st=eredis err=%.200s",
                     worker_reply_error(reply));
        }
        schedule_read_retry(w);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY)
        take_read_reply(w, reply);
    claims_own_done(w);
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
    /* Our own pending items come with their delivery counts, so one that
     * crashed every run before becomes a dead letter, not another probe. */
    if (w->read_own_pending)
        claims_count_own(w, free_slots);
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
        int e = conn_check_source(w->sources[i]);

        if (e == EINVAL) {
            snprintf(err, errsize,
                     "invalid source address \"%s\" in "
                     "MXPROBE_SOURCE_ADDRS (--source-addrs): expected IPv4 "
                     "or IPv6 addresses separated by commas",
                     w->sources[i]);
            return false;
        }
        if (e != 0) {
            snprintf(err, errsize,
                     "source address \"%s\" in MXPROBE_SOURCE_ADDRS "
                     "(--source-addrs) cannot be used: %s (is it an address "
                     "of this host?)",
                     w->sources[i], strerror(e));
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
    ev_timer_init(&w->claim_timer, claims_on_claim_timer, claim / 2, claim / 2);
    w->claim_timer.data = w;
    ev_timer_start(w->loop, &w->claim_timer);
    ev_timer_init(&w->refresh_timer, claims_on_refresh_timer, claim / 3,
                  claim / 3);
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
                       err, errsize) ||
        tls_client_new(&w->tls, err, errsize) != ST_OK) {
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
    /* Renewed every claim_idle/3 while the session runs, so a lease of
     * claim_idle survives two missed renewals, and a killed worker's slots
     * free themselves within claim_idle. */
    w->rl.lease_ms = (int64_t)(cfg->claim_idle * 1000);
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
            worker_slot_free(&w->slots[i]);
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
    claims_own_done(w);
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
    tls_client_free(w->tls);
    free(w->id);
    free(w);
}
