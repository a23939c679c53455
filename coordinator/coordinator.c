/* SPDX-License-Identifier: MIT */
/*
 * The coordinator's loop. Three Redis connections: one for the blocking
 * XREADGROUP, one for every other command, one subscribed to the catch-all
 * channel. A restart first reads this consumer's own pending entries, so
 * nothing read before a crash is lost. Their delivery counts come along, so
 * a job that crashes the process on every read becomes a dead letter after
 * max_deliveries reads instead of looping. A periodic scan takes over entries
 * that other consumers left idle for claim_idle. A one-second tick moves due
 * items from the delayed set to the probes stream and drives the catch-all
 * deadlines.
 */
#include "coordinator.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "domains.h"
#include "intake.h"
#include "log.h"
#include "xalloc.h"

/* Seconds a command may wait on the command connection. */
#define COORD_COMMAND_TIMEOUT 10.0

/*
 * Moves due probe items from the delayed set (KEYS[1], scored by due wall
 * ms) to the probes stream (KEYS[2]); ARGV[1] is now. Atomic, so an item is
 * never in both or in neither.
 */
static const char coord_delayed_script[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], "
    "'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('XADD', KEYS[2], '*', 'item', m)\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

static void coordinator_read(struct coordinator *co);

/* The entries of one pending-list page (a takeover scan or our own list)
 * with their delivery counts before this read. */
struct coord_claim {
    struct coordinator *co;
    size_t n;
    char ids[COORD_READ_COUNT][64];
    long long deliveries[COORD_READ_COUNT];
};

/* Returns the delivery count to report when entry id must become a dead
 * letter (it was delivered max_deliveries times already), else 0. */
static long long
coordinator_dead_count(const struct coordinator *co,
                       const struct coord_claim *c, const char *id)
{
    for (size_t j = 0; c != NULL && j < c->n; j++) {
        if (strcmp(c->ids[j], id) == 0 &&
            c->deliveries[j] >= co->cfg->max_deliveries)
            return c->deliveries[j] + 1;
    }
    return 0;
}

/* Keeps the entries of an XPENDING page that belong to other consumers
 * (own false, a takeover scan) or to us (own true, our own list). */
static void
coordinator_collect_claims(struct coordinator *co, const redisReply *reply,
                           struct coord_claim *c, bool own)
{
    for (size_t i = 0; i < reply->elements && c->n < COORD_READ_COUNT; i++) {
        const redisReply *p = reply->element[i];

        if (p->type != REDIS_REPLY_ARRAY || p->elements != 4 ||
            p->element[0]->type != REDIS_REPLY_STRING ||
            p->element[1]->type != REDIS_REPLY_STRING ||
            p->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        /* Our own entries are in memory or come back through our own
         * pending list; only other consumers' entries are taken over. */
        if ((strcmp(p->element[1]->str, co->consumer) == 0) != own ||
            p->element[0]->len >= sizeof c->ids[0])
            continue;
        snprintf(c->ids[c->n], sizeof c->ids[0], "%s", p->element[0]->str);
        c->deliveries[c->n] = p->element[3]->integer;
        c->n++;
    }
}

/* Keeps the delivery counts of the page of our own pending list that the
 * read queued right behind this XPENDING returns. */
static void
coordinator_on_own_pending(struct redis_conn *rc, redisReply *reply,
                           void *arg)
{
    struct coordinator *co = arg;

    (void)rc;
    free(co->own_claim);
    co->own_claim = NULL;
    if (co->closing || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    co->own_claim = xcalloc(1, sizeof *co->own_claim);
    co->own_claim->co = co;
    coordinator_collect_claims(co, reply, co->own_claim, true);
}

/* Takes the entries ([id, fields] each) of a takeover or of a read of our
 * own pending list. Those delivered too often become dead letters. */
static void
coordinator_intake_counted(struct coordinator *co, const redisReply *entries,
                           const struct coord_claim *c)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        intake_entry(co, e, coordinator_dead_count(co, c, e->element[0]->str));
    }
    domains_flush(co);
}

void
coordinator_release_entry(struct coordinator *co, const char *entry,
                          bool lost)
{
    if (entry != NULL)
        strmap_remove(&co->entries, entry);
    if (lost)
        co->read_own_wanted = true;
}

void
coordinator_on_write_done(struct coordinator *co)
{
    if (co->stopping && co->writes == 0)
        ev_break(co->loop, EVBREAK_ALL);
}

static bool
coordinator_can_read(const struct coordinator *co)
{
    /* Reading while the command connection is down would only fill memory
     * with jobs that cannot be written. */
    /* NOTE: jobs held for one domain's catch-all check count against
     * COORD_JOBS_MEMORY_MAX too, so a huge list of one domain pauses all
     * reading for up to catchall_wait. */
    return !co->stopping && !co->closing && !co->reading &&
           redis_conn_is_ready(co->rc_read) &&
           redis_conn_is_ready(co->rc_cmd) &&
           co->entries.count < COORD_JOBS_MEMORY_MAX;
}

static void
coordinator_on_read(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct coordinator *co = arg;
    const redisReply *entries = NULL;
    bool own = co->read_own;

    (void)rc;
    co->reading = false;
    if (co->closing)
        return;
    if (reply == NULL)
        return;  /* the ready callback or the tick reads again */
    if (reply->type == REDIS_REPLY_ERROR) {
        log_warn(NULL, "ev=read_failed st=eredis detail=\"%s\"", reply->str);
        return;  /* the tick creates the groups again and retries */
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements == 2)
        entries = reply->element[0]->element[1];

    if (co->read_own) {
        if (entries == NULL || entries->type != REDIS_REPLY_ARRAY ||
            entries->elements == 0) {
            co->read_own = false;
        } else {
            const redisReply *last = entries->element[entries->elements - 1];

            if (last->type == REDIS_REPLY_ARRAY && last->elements > 0 &&
                last->element[0]->type == REDIS_REPLY_STRING)
                snprintf(co->own_cursor, sizeof co->own_cursor, "%s",
                         last->element[0]->str);
            else
                co->read_own = false;
        }
    }
    if (own)
        coordinator_intake_counted(co, entries, co->own_claim);
    else
        intake_entries(co, entries);
    free(co->own_claim);
    co->own_claim = NULL;
    coordinator_read(co);
}

/* Asks for the delivery counts of the next page of our own pending list:
 * the entries after own_cursor, as the history read returns them. */
static void
coordinator_count_own(struct coordinator *co, const char *jobs,
                      const char *count)
{
    char start[sizeof co->own_cursor + 1];

    if (strcmp(co->own_cursor, "0") == 0)
        snprintf(start, sizeof start, "-");
    else
        snprintf(start, sizeof start, "(%s", co->own_cursor);
    redis_conn_commandf(co->rc_read, coordinator_on_own_pending, co,
                        "XPENDING %s %s %s + %s %s", jobs,
                        KEYS_GROUP_COORDINATOR, start, count, co->consumer);
}

static void
coordinator_read(struct coordinator *co)
{
    char jobs[KEYS_NAME_MAX];
    char count[16];
    enum status st;

    if (!coordinator_can_read(co))
        return;
    if (co->read_own_wanted && !co->read_own) {
        co->read_own_wanted = false;
        co->read_own = true;
        snprintf(co->own_cursor, sizeof co->own_cursor, "0");
    }
    keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
    snprintf(count, sizeof count, "%d", COORD_READ_COUNT);
    if (co->read_own) {
        /* Our own pending list: entries read before a restart or a lost
         * write. History reads do not block. The XPENDING of the same page
         * goes first on the same connection, so its delivery counts are
         * there when the entries come back. */
        coordinator_count_own(co, jobs, count);
        st = redis_conn_commandf(co->rc_read, coordinator_on_read, co,
                                 "XREADGROUP GROUP %s %s COUNT %s STREAMS "
                                 "%s %s",
                                 KEYS_GROUP_COORDINATOR, co->consumer, count,
                                 jobs, co->own_cursor);
    } else {
        st = redis_conn_commandf(co->rc_read, coordinator_on_read, co,
                                 "XREADGROUP GROUP %s %s COUNT %s BLOCK %d "
                                 "STREAMS %s >",
                                 KEYS_GROUP_COORDINATOR, co->consumer, count,
                                 COORD_READ_BLOCK_MS, jobs);
    }
    if (st == ST_OK)
        co->reading = true;
}

static void
coordinator_create_groups(struct coordinator *co, struct redis_conn *rc)
{
    char jobs[KEYS_NAME_MAX];
    char probes[KEYS_NAME_MAX];

    keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
    keys_name(&co->keys, KEY_PROBES, NULL, probes, sizeof probes);
    /* Id 0, not $: jobs submitted before any coordinator ran are read too.
     * BUSYGROUP errors (the group exists) are expected and ignored. */
    redis_conn_commandf(rc, NULL, NULL, "XGROUP CREATE %s %s 0 MKSTREAM",
                        jobs, KEYS_GROUP_COORDINATOR);
    redis_conn_commandf(rc, NULL, NULL, "XGROUP CREATE %s %s 0 MKSTREAM",
                        probes, KEYS_GROUP_WORKERS);
}

static void
coordinator_on_read_ready(struct redis_conn *rc, void *arg)
{
    struct coordinator *co = arg;

    log_info(NULL, "ev=redis_ready conn=read consumer=%s", co->consumer);
    coordinator_create_groups(co, rc);
    co->read_own = true;
    snprintf(co->own_cursor, sizeof co->own_cursor, "0");
    coordinator_read(co);
}

static void
coordinator_on_cmd_ready(struct redis_conn *rc, void *arg)
{
    struct coordinator *co = arg;

    (void)rc;
    log_info(NULL, "ev=redis_ready conn=cmd");
    coordinator_read(co);
}

/* Decodes a catch-all decision {domain, catch_all, checked_at}. */
static void
coordinator_on_decision(struct coordinator *co, const char *data, size_t len)
{
    msgpack_unpacked u;
    char domain[DNS_NAME_MAX] = "";
    enum tristate flag = TRI_UNKNOWN;
    int64_t checked_at = 0;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, data, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;

        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            const msgpack_object *v = &m->ptr[i].val;

            if (k->type != MSGPACK_OBJECT_STR)
                continue;
            if (k->via.str.size == 6 &&
                memcmp(k->via.str.ptr, "domain", 6) == 0 &&
                v->type == MSGPACK_OBJECT_STR &&
                v->via.str.size < sizeof domain) {
                memcpy(domain, v->via.str.ptr, v->via.str.size);
                domain[v->via.str.size] = '\0';
            } else if (k->via.str.size == 9 &&
                       memcmp(k->via.str.ptr, "catch_all", 9) == 0 &&
                       v->type == MSGPACK_OBJECT_BOOLEAN) {
                flag = v->via.boolean ? TRI_YES : TRI_NO;
            } else if (k->via.str.size == 10 &&
                       memcmp(k->via.str.ptr, "checked_at", 10) == 0 &&
                       v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                checked_at = (int64_t)v->via.u64;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    if (domain[0] != '\0' && strlen(domain) == strnlen(domain, sizeof domain))
        domains_on_catchall(co, domain, flag, checked_at);
}

static void
coordinator_on_message(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct coordinator *co = arg;

    (void)rc;
    if (reply == NULL || co->closing)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "message") == 0 &&
        reply->element[2]->type == REDIS_REPLY_STRING)
        coordinator_on_decision(co, reply->element[2]->str,
                                reply->element[2]->len);
}

static void
coordinator_on_sub_ready(struct redis_conn *rc, void *arg)
{
    struct coordinator *co = arg;
    char channel[KEYS_NAME_MAX];

    keys_name(&co->keys, KEY_CATCHALL, NULL, channel, sizeof channel);
    if (redis_conn_subscribe(rc, coordinator_on_message, co, channel) !=
        ST_OK)
        log_warn(NULL, "ev=subscribe_failed st=eredis channel=%s", channel);
    /* Decisions published while we were not subscribed are in the hashes. */
    domains_poll_catchall(co);
}

static void
coordinator_move_delayed(struct coordinator *co)
{
    char delayed[KEYS_NAME_MAX];
    char probes[KEYS_NAME_MAX];

    keys_name(&co->keys, KEY_DELAYED, NULL, delayed, sizeof delayed);
    keys_name(&co->keys, KEY_PROBES, NULL, probes, sizeof probes);
    redis_conn_commandf(co->rc_cmd, NULL, NULL, "EVAL %s 2 %s %s %lld",
                        coord_delayed_script, delayed, probes,
                        (long long)clock_wall_ms());
}

static void
coordinator_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coordinator *co = w->data;

    (void)loop;
    (void)revents;
    if (co->closing)
        return;
    co->ticks++;
    domains_tick(co);
    if (co->stopping || !redis_conn_is_ready(co->rc_cmd))
        return;
    if (co->ticks % 2 == 0)
        domains_poll_catchall(co);
    coordinator_move_delayed(co);
    if (!co->reading && redis_conn_is_ready(co->rc_read)) {
        if (co->ticks % 5 == 0)
            coordinator_create_groups(co, co->rc_read);
        coordinator_read(co);
    }
}

static void
coordinator_on_claimed(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct coord_claim *c = arg;
    struct coordinator *co = c->co;

    (void)rc;
    co->claiming = false;
    if (!co->closing && reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        coordinator_intake_counted(co, reply, c);
        log_info(NULL, "ev=claimed entries=%zu", reply->elements);
    }
    free(c);
}

static void
coordinator_on_pending(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct coordinator *co = arg;
    struct coord_claim *c;
    char jobs[KEYS_NAME_MAX];
    char idle[32];
    struct redis_args a;

    co->claiming = false;
    if (co->closing || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    /* A full page means more may follow: continue after its last id. */
    if (reply->elements == COORD_READ_COUNT &&
        reply->element[reply->elements - 1]->type == REDIS_REPLY_ARRAY)
        snprintf(co->claim_cursor, sizeof co->claim_cursor, "(%s",
                 reply->element[reply->elements - 1]->element[0]->str);
    else
        snprintf(co->claim_cursor, sizeof co->claim_cursor, "-");

    c = xcalloc(1, sizeof *c);
    c->co = co;
    coordinator_collect_claims(co, reply, c, false);
    if (c->n == 0) {
        free(c);
        return;
    }
    keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
    snprintf(idle, sizeof idle, "%lld",
             (long long)(co->cfg->claim_idle * 1000.0));
    redis_args_init(&a);
    redis_args_add_str(&a, "XCLAIM");
    redis_args_add_str(&a, jobs);
    redis_args_add_str(&a, KEYS_GROUP_COORDINATOR);
    redis_args_add_str(&a, co->consumer);
    redis_args_add_str(&a, idle);
    for (size_t i = 0; i < c->n; i++)
        redis_args_add_str(&a, c->ids[i]);
    if (redis_conn_command_args(rc, coordinator_on_claimed, c, &a) == ST_OK)
        co->claiming = true;
    else
        free(c);
    redis_args_fini(&a);
}

/* NOTE: the leader lease is not taken, so two coordinators on one prefix
 * both run; each job still goes to one of them, but a domain may be
 * resolved and catch-all checked once per coordinator. */
static void
coordinator_on_claim_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coordinator *co = w->data;
    char jobs[KEYS_NAME_MAX];

    (void)loop;
    (void)revents;
    if (co->closing || co->stopping || co->claiming ||
        !redis_conn_is_ready(co->rc_cmd))
        return;
    keys_name(&co->keys, KEY_JOBS, NULL, jobs, sizeof jobs);
    if (redis_conn_commandf(co->rc_cmd, coordinator_on_pending, co,
                            "XPENDING %s %s IDLE %lld %s + %d", jobs,
                            KEYS_GROUP_COORDINATOR,
                            (long long)(co->cfg->claim_idle * 1000.0),
                            co->claim_cursor, COORD_READ_COUNT) == ST_OK)
        co->claiming = true;
}

static void
coordinator_on_stop_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coordinator *co = w->data;

    (void)revents;
    log_warn(NULL, "ev=stop_timeout writes=%zu", co->writes);
    ev_break(loop, EVBREAK_ALL);
}

void
coordinator_stop(struct coordinator *co)
{
    if (co->stopping)
        return;
    co->stopping = true;
    log_info(NULL, "ev=stopping writes=%zu jobs_in_memory=%zu", co->writes,
             co->entries.count);
    if (co->writes == 0) {
        ev_break(co->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_start(co->loop, &co->stop_wait);
}

static void
coordinator_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    coordinator_stop(w->data);
}

static void
coordinator_set_consumer(struct coordinator *co)
{
    char host[64];

    /* A stable name lets a restarted coordinator find its own pending
     * entries; the process id would change on every start. */
    if (co->cfg->worker_id != NULL && co->cfg->worker_id[0] != '\0') {
        snprintf(co->consumer, sizeof co->consumer, "%s", co->cfg->worker_id);
        return;
    }
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "coordinator");
    host[sizeof host - 1] = '\0';
    snprintf(co->consumer, sizeof co->consumer, "%s", host);
}

static void
coordinator_start_watchers(struct coordinator *co)
{
    double claim_every = co->cfg->claim_idle / 2.0;

    ev_timer_init(&co->tick, coordinator_on_tick, 1.0, 1.0);
    co->tick.data = co;
    ev_timer_start(co->loop, &co->tick);
    ev_timer_init(&co->claim, coordinator_on_claim_timer, claim_every,
                  claim_every);
    co->claim.data = co;
    ev_timer_start(co->loop, &co->claim);
    ev_timer_init(&co->stop_wait, coordinator_on_stop_wait, COORD_STOP_WAIT,
                  0.0);
    co->stop_wait.data = co;
    ev_signal_init(&co->sigterm, coordinator_on_signal, SIGTERM);
    co->sigterm.data = co;
    ev_signal_start(co->loop, &co->sigterm);
    ev_signal_init(&co->sigint, coordinator_on_signal, SIGINT);
    co->sigint.data = co;
    ev_signal_start(co->loop, &co->sigint);
}

enum status
coordinator_init(struct coordinator *co, struct ev_loop *loop,
                 const struct config *cfg, char *err, size_t errsize)
{
    double read_timeout = COORD_READ_BLOCK_MS / 1000.0 + 5.0;

    memset(co, 0, sizeof *co);
    co->loop = loop;
    co->cfg = cfg;
    keys_init(&co->keys, cfg->prefix);
    if (config_parse_redis(cfg->redis, &co->raddr, err, errsize) != ST_OK)
        return ST_ECONFIG;
    co->dns = dns_new(loop, cfg->dns, cfg->dns_timeout, cfg->dns_tries, err,
                      errsize);
    if (co->dns == NULL)
        return ST_ECONFIG;
    coordinator_set_consumer(co);
    snprintf(co->claim_cursor, sizeof co->claim_cursor, "-");
    strmap_init(&co->domains);
    strmap_init(&co->entries);

    co->rc_cmd = redis_conn_new(loop, &co->raddr, "cmd",
                                COORD_COMMAND_TIMEOUT,
                                coordinator_on_cmd_ready, co);
    co->rc_read = redis_conn_new(loop, &co->raddr, "read", read_timeout,
                                 coordinator_on_read_ready, co);
    co->rc_sub = redis_conn_new(loop, &co->raddr, "sub",
                                COORD_COMMAND_TIMEOUT,
                                coordinator_on_sub_ready, co);
    coordinator_start_watchers(co);
    log_info(NULL, "ev=start consumer=%s prefix=%s dns=%s dns_timeout=%.2f "
             "dns_tries=%d batch_size=%d catchall_wait=%.1f claim_idle=%.1f",
             co->consumer, cfg->prefix, cfg->dns[0] ? cfg->dns : "system",
             cfg->dns_timeout, cfg->dns_tries, cfg->batch_size,
             cfg->catchall_wait, cfg->claim_idle);
    return ST_OK;
}

void
coordinator_fini(struct coordinator *co)
{
    co->closing = true;
    ev_timer_stop(co->loop, &co->tick);
    ev_timer_stop(co->loop, &co->claim);
    ev_timer_stop(co->loop, &co->stop_wait);
    ev_signal_stop(co->loop, &co->sigterm);
    ev_signal_stop(co->loop, &co->sigint);
    /* Outstanding callbacks fire with NULL here and see closing. */
    redis_conn_free(co->rc_read);
    redis_conn_free(co->rc_sub);
    redis_conn_free(co->rc_cmd);
    co->rc_read = NULL;
    co->rc_sub = NULL;
    co->rc_cmd = NULL;
    dns_free(co->dns);
    co->dns = NULL;
    free(co->own_claim);
    co->own_claim = NULL;
    domains_free_all(co);
    log_info(NULL, "ev=stopped jobs_left_pending=%zu", co->entries.count);
    strmap_fini(&co->domains);
    strmap_fini(&co->entries);
}
