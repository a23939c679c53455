/* SPDX-License-Identifier: MIT */
/*
 * The resilient Redis connection: one hiredis 0.14 asynchronous context at a
 * time, replaced by a new one after every loss, with a connect deadline, an
 * AUTH/SELECT/PING handshake, reconnect backoff with jitter and a watchdog on
 * the oldest outstanding command. Every command goes through a heap record
 * (struct rc_pending) so that callbacks fire exactly once and in order.
 * Parsing replies is left to the callers.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

#include "clock.h"
#include "log.h"
#include "redis_conn.h"
#include "xalloc.h"

#define RC_BACKOFF_MIN 0.1   /* seconds before the first reconnect */
#define RC_BACKOFF_MAX 5.0   /* seconds; the backoff doubles up to this */
#define RC_WATCHDOG_MAX 1.0  /* seconds between watchdog checks, at most */
#define RC_ERR_MAX 128

enum rc_state {
    RC_ST_IDLE,        /* no context; the retry timer is armed */
    RC_ST_CONNECTING,  /* TCP or unix connect in flight, deadline armed */
    RC_ST_HANDSHAKE,   /* connected; AUTH, SELECT and PING sent */
    RC_ST_READY,       /* handshake passed; commands are accepted */
    RC_ST_LOSING,      /* the context is going away; its callbacks drain */
    RC_ST_CLOSED,      /* redis_conn_free() was called */
    RC_ST_NSTATES
};

static const char *const rc_state_names[] = {
    [RC_ST_IDLE] = "idle",
    [RC_ST_CONNECTING] = "connecting",
    [RC_ST_HANDSHAKE] = "handshake",
    [RC_ST_READY] = "ready",
    [RC_ST_LOSING] = "losing",
    [RC_ST_CLOSED] = "closed",
};
_Static_assert(sizeof rc_state_names / sizeof rc_state_names[0] ==
                   RC_ST_NSTATES,
               "rc_state_names must name every state");

enum rc_kind {
    RC_KIND_USER,       /* a caller's command: its callback fires once */
    RC_KIND_HANDSHAKE,  /* AUTH, SELECT or PING sent after connecting */
    RC_KIND_SUBSCRIBE   /* a subscription: fires per message, then NULL */
};

/* One command waiting for its reply; hiredis keeps it as privdata. */
struct rc_pending {
    struct rc_pending *prev;
    struct rc_pending *next;
    struct redis_conn *rc;
    enum rc_kind kind;
    bool last_handshake;   /* the PING whose reply makes the link ready */
    bool auth;             /* the AUTH of the handshake */
    redis_reply_fn *cb;
    void *arg;
    ev_tstamp sent;        /* loop time the command was queued */
};

struct redis_conn {
    struct ev_loop *loop;
    struct redis_addr addr;
    char name[64];
    double command_timeout;
    redis_conn_ready_fn *ready;
    void *ready_arg;

    redisAsyncContext *ac;   /* NULL while idle */
    enum rc_state state;
    enum rc_state lost_in;   /* the state a loss began in, for the log */
    ev_timer retry_timer;    /* next connect attempt */
    ev_timer connect_timer;  /* connect deadline, or a deferred drop */
    ev_timer watchdog;       /* checks the oldest outstanding command */
    double backoff;          /* seconds of the next retry before jitter */
    uint64_t rng;            /* xorshift state for the jitter */

    struct rc_pending *head; /* outstanding commands, oldest first */
    struct rc_pending *tail;
    size_t n_pending;
    size_t n_subs;           /* live subscription records */

    int depth;               /* frames of this module on the stack */
    int in_hiredis;          /* of those, callbacks run by hiredis */
    bool in_connect_cb;      /* hiredis 0.14 must not free the context now */
    char err[RC_ERR_MAX];    /* why the current context is being dropped */
};

static void rc_on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static double rc_schedule_retry(struct redis_conn *rc);

static void
rc_set_state(struct redis_conn *rc, enum rc_state next)
{
    if (rc->state == next)
        return;
    if (next == RC_ST_LOSING)
        rc->lost_in = rc->state;
    log_debug(NULL, "ev=redis_state name=%s from=%s to=%s", rc->name,
              rc_state_names[rc->state], rc_state_names[next]);
    rc->state = next;
}

static void
rc_set_err(struct redis_conn *rc, const char *err)
{
    int n;

    if (err == rc->err)
        return;
    n = snprintf(rc->err, sizeof rc->err, "%s", err ? err : "unknown");
    if (n < 0)
        rc->err[0] = '\0';
}

/* A frame of this module starts; the struct must outlive it. */
static void
rc_enter(struct redis_conn *rc)
{
    rc->depth++;
}

/*
 * A frame ends. A redis_conn_free() that was called inside a callback
 * finishes here, once hiredis has let go of the context (its disconnect
 * callback or a synchronous redisAsyncFree set ac to NULL).
 */
static void
rc_leave(struct redis_conn *rc)
{
    assert(rc->depth > 0);
    rc->depth--;
    if (rc->depth > 0 || rc->state != RC_ST_CLOSED || rc->ac != NULL)
        return;
    assert(rc->n_pending == 0);
    assert(rc->n_subs == 0);
    free(rc);
}

static double
rc_jitter(struct redis_conn *rc, double base)
{
    uint64_t x = rc->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rc->rng = x;
    /* Half fixed, half random, so a fleet restarted at once spreads out. */
    return base / 2 + base / 2 * (double)(x % 1000) / 1000.0;
}

static void
rc_list_push(struct redis_conn *rc, struct rc_pending *p)
{
    p->prev = rc->tail;
    p->next = NULL;
    if (rc->tail != NULL)
        rc->tail->next = p;
    else
        rc->head = p;
    rc->tail = p;
    rc->n_pending++;
}

static void
rc_list_remove(struct redis_conn *rc, struct rc_pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        rc->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        rc->tail = p->prev;
    p->prev = NULL;
    p->next = NULL;
    assert(rc->n_pending > 0);
    rc->n_pending--;
}

/* The context is gone for good: log it and plan the next attempt. */
static void
rc_lost(struct redis_conn *rc, const char *err)
{
    char q[LOG_QUOTE_MAX];
    enum rc_state was = rc->state == RC_ST_LOSING ? rc->lost_in : rc->state;
    double delay;

    ev_timer_stop(rc->loop, &rc->connect_timer);
    if (rc->state == RC_ST_CLOSED)
        return;
    rc_set_state(rc, RC_ST_IDLE);
    delay = rc_schedule_retry(rc);
    log_warn(NULL, "ev=redis_disconnect name=%s state=%s err=%s retry_s=%.2f",
             rc->name, rc_state_names[was], log_quote(q, sizeof q, err),
             delay);
}

/*
 * Frees the current context now, which runs every outstanding callback with
 * NULL. Inside a hiredis reply callback hiredis defers the free until the
 * callback returns, and its disconnect callback then reports the loss.
 */
static void
rc_drop(struct redis_conn *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;

    if (ac == NULL)
        return;
    rc_set_err(rc, why);
    if (rc->state != RC_ST_CLOSED)
        rc_set_state(rc, RC_ST_LOSING);
    if (rc->in_connect_cb) {
        /* hiredis 0.14 goes on using the context after the connect
         * callback returns, so free it from the loop instead. */
        ev_timer_stop(rc->loop, &rc->connect_timer);
        ev_timer_set(&rc->connect_timer, 0., 0.);
        ev_timer_start(rc->loop, &rc->connect_timer);
        return;
    }
    redisAsyncFree(ac);
    if (rc->in_hiredis > 0 || rc->ac == NULL)
        return;
    /* Freed synchronously before it connected: no disconnect callback. */
    rc->ac = NULL;
    rc_lost(rc, rc->err);
}

/* Sends a formatted command with a record; the record is freed on error. */
static enum status
rc_send(struct redis_conn *rc, struct rc_pending *p, const char *cmd,
        size_t len)
{
    p->rc = rc;
    p->sent = ev_now(rc->loop);
    if (p->kind != RC_KIND_SUBSCRIBE)
        rc_list_push(rc, p);
    else
        rc->n_subs++;
    if (redisAsyncFormattedCommand(rc->ac, rc_on_reply, p, cmd, len) ==
        REDIS_OK) {
        return ST_OK;
    }
    if (p->kind != RC_KIND_SUBSCRIBE)
        rc_list_remove(rc, p);
    else
        rc->n_subs--;
    free(p);
    return ST_EREDIS;
}

static enum status
rc_send_handshake(struct redis_conn *rc, bool last, int argc,
                  const char **argv)
{
    struct rc_pending *p = xcalloc(1, sizeof *p);
    char *cmd = NULL;
    int len;
    enum status st;

    p->kind = RC_KIND_HANDSHAKE;
    p->last_handshake = last;
    p->auth = strcmp(argv[0], "AUTH") == 0;
    len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) {
        free(p);
        return ST_EREDIS;
    }
    st = rc_send(rc, p, cmd, (size_t)len);
    free(cmd);
    return st;
}

/* Queues [AUTH], [SELECT] and PING; the PING reply makes the link ready. */
static enum status
rc_start_handshake(struct redis_conn *rc)
{
    char db[24];
    const char *argv[2];
    enum status st = ST_OK;
    int n;

    if (rc->addr.password[0] != '\0') {
        argv[0] = "AUTH";
        argv[1] = rc->addr.password;
        st = rc_send_handshake(rc, false, 2, argv);
    }
    if (st == ST_OK && rc->addr.db != 0) {
        n = snprintf(db, sizeof db, "%d", rc->addr.db);
        if (n < 0 || (size_t)n >= sizeof db)
            return ST_EINVAL;
        argv[0] = "SELECT";
        argv[1] = db;
        st = rc_send_handshake(rc, false, 2, argv);
    }
    if (st == ST_OK) {
        argv[0] = "PING";
        st = rc_send_handshake(rc, true, 1, argv);
    }
    return st;
}

static void
rc_on_handshake_reply(struct redis_conn *rc, const struct rc_pending *p,
                      const redisReply *reply)
{
    char q[LOG_QUOTE_MAX];

    if (reply == NULL || rc->state != RC_ST_HANDSHAKE)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[RC_ERR_MAX];

        /* A wrong password or db stays wrong, but the operator may fix the
         * server, so this is retried with backoff like any other loss. The
         * server's words differ by version (WRONGPASS, ERR invalid
         * password, NOAUTH when no password was given), so the cause is
         * named in our own words first. The reply never contains the
         * password. */
        if (p->auth || strncmp(reply->str, "NOAUTH", 6) == 0) {
            snprintf(why, sizeof why, "authentication failed: %s",
                     reply->str);
            rc_drop(rc, why);
        } else {
            rc_drop(rc, reply->str);
        }
        return;
    }
    if (!p->last_handshake)
        return;
    rc_set_state(rc, RC_ST_READY);
    rc->backoff = RC_BACKOFF_MIN;
    log_info(NULL, "ev=redis_connected name=%s addr=%s",
             rc->name, log_quote(q, sizeof q, rc->addr.path[0] != '\0' ?
                                 rc->addr.path : rc->addr.host));
    if (rc->ready != NULL)
        rc->ready(rc, rc->ready_arg);
}

/* The one hiredis reply callback: every command's record comes back here. */
static void
rc_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rc_pending *p = privdata;
    struct redis_conn *rc = p->rc;
    bool done = true;

    (void)ac;
    rc_enter(rc);
    rc->in_hiredis++;
    if (p->kind != RC_KIND_SUBSCRIBE)
        rc_list_remove(rc, p);
    if (reply == NULL && rc->state != RC_ST_CLOSED)
        rc_set_state(rc, RC_ST_LOSING);

    switch (p->kind) {
    case RC_KIND_HANDSHAKE:
        rc_on_handshake_reply(rc, p, reply);
        break;
    case RC_KIND_SUBSCRIBE:
        /* hiredis keeps the record for every message of the channel and
         * hands it back once more with NULL when the context goes. */
        done = reply == NULL;
        if (p->cb != NULL)
            p->cb(rc, reply, p->arg);
        break;
    case RC_KIND_USER:
        if (p->cb != NULL)
            p->cb(rc, reply, p->arg);
        break;
    default:
        log_crit(NULL, "ev=redis_bad_record name=%s kind=%d", rc->name,
                 (int)p->kind);
        abort();
    }

    if (done) {
        if (p->kind == RC_KIND_SUBSCRIBE)
            rc->n_subs--;
        free(p);
    }
    rc->in_hiredis--;
    rc_leave(rc);
}

static void
rc_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *rc = ac->data;

    rc_enter(rc);
    ev_timer_stop(rc->loop, &rc->connect_timer);
    if (status != REDIS_OK) {
        /* hiredis frees the context when this callback returns. */
        rc_set_err(rc, ac->errstr);
        rc->ac = NULL;
        rc_lost(rc, rc->err);
        rc_leave(rc);
        return;
    }
    rc->in_connect_cb = true;
    rc_set_state(rc, RC_ST_HANDSHAKE);
    if (rc_start_handshake(rc) != ST_OK)
        rc_drop(rc, "handshake not sent");
    rc->in_connect_cb = false;
    rc_leave(rc);
}

static void
rc_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *rc = ac->data;

    rc_enter(rc);
    rc->in_hiredis++;
    if (rc->ac == ac) {
        rc->ac = NULL;
        if (status != REDIS_OK)
            rc_set_err(rc, ac->errstr);
        else if (rc->state != RC_ST_LOSING)
            rc_set_err(rc, "closed");
        rc_lost(rc, rc->err);
    }
    rc->in_hiredis--;
    rc_leave(rc);
}

/*
 * Resolves the host to a numeric address. hiredis 0.14 calls getaddrinfo()
 * inside redisAsyncConnect() too, so a name blocks the loop either way; with
 * a numeric address neither call blocks.
 */
static enum status
rc_resolve(const char *host, char *out, size_t size)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const void *where;
    int rv;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* NOTE: resolving a name blocks the loop; use an IP address or a unix
     * socket in MXPROBE_REDIS where that matters. */
    rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || res == NULL)
        return ST_EDNS;
    if (res->ai_family == AF_INET6)
        where = &((const struct sockaddr_in6 *)(const void *)res->ai_addr)
                     ->sin6_addr;
    else
        where = &((const struct sockaddr_in *)(const void *)res->ai_addr)
                     ->sin_addr;
    if (inet_ntop(res->ai_family, where, out, (socklen_t)size) == NULL) {
        freeaddrinfo(res);
        return ST_EDNS;
    }
    freeaddrinfo(res);
    return ST_OK;
}

static redisAsyncContext *
rc_open(struct redis_conn *rc)
{
    char ip[INET6_ADDRSTRLEN];
    redisAsyncContext *ac;

    if (rc->addr.path[0] != '\0')
        return redisAsyncConnectUnix(rc->addr.path);
    if (rc_resolve(rc->addr.host, ip, sizeof ip) != ST_OK) {
        rc_set_err(rc, "host name not resolved");
        return NULL;
    }
    ac = redisAsyncConnect(ip, rc->addr.port);
    if (ac == NULL)
        rc_set_err(rc, "out of memory");
    return ac;
}

static void
rc_connect(struct redis_conn *rc)
{
    redisAsyncContext *ac = rc_open(rc);

    if (ac != NULL && ac->err != 0) {
        rc_set_err(rc, ac->errstr);
        redisAsyncFree(ac);
        ac = NULL;
    }
    if (ac == NULL) {
        rc_lost(rc, rc->err);
        return;
    }
    ac->data = rc;
    if (redisLibevAttach(rc->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        rc_lost(rc, "libev attach failed");
        return;
    }
    redisAsyncSetConnectCallback(ac, rc_on_connect);
    redisAsyncSetDisconnectCallback(ac, rc_on_disconnect);
    rc->ac = ac;
    rc_set_err(rc, "connect timed out");
    rc_set_state(rc, RC_ST_CONNECTING);
    ev_timer_set(&rc->connect_timer, rc->command_timeout, 0.);
    ev_timer_start(rc->loop, &rc->connect_timer);
}

static double
rc_schedule_retry(struct redis_conn *rc)
{
    double delay = rc_jitter(rc, rc->backoff);

    rc->backoff *= 2;
    if (rc->backoff > RC_BACKOFF_MAX)
        rc->backoff = RC_BACKOFF_MAX;
    ev_timer_stop(rc->loop, &rc->retry_timer);
    ev_timer_set(&rc->retry_timer, delay, 0.);
    ev_timer_start(rc->loop, &rc->retry_timer);
    return delay;
}

static void
rc_on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_conn *rc = w->data;

    (void)loop;
    (void)revents;
    rc_enter(rc);
    if (rc->state == RC_ST_IDLE)
        rc_connect(rc);
    rc_leave(rc);
}

/* The connect deadline passed, or a drop was deferred out of a callback. */
static void
rc_on_connect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_conn *rc = w->data;

    (void)loop;
    (void)revents;
    rc_enter(rc);
    rc_drop(rc, rc->err);
    rc_leave(rc);
}

static void
rc_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_conn *rc = w->data;
    char why[RC_ERR_MAX];
    double waited;
    int n;

    (void)revents;
    if (rc->head == NULL || rc->ac == NULL)
        return;
    if (rc->state != RC_ST_READY && rc->state != RC_ST_HANDSHAKE)
        return;
    waited = ev_now(loop) - rc->head->sent;
    if (waited <= rc->command_timeout)
        return;
    n = snprintf(why, sizeof why, "command timed out after %.2f s", waited);
    if (n < 0)
        why[0] = '\0';
    rc_enter(rc);
    rc_drop(rc, why);
    rc_leave(rc);
}

struct redis_conn *
redis_conn_new(struct ev_loop *loop, const struct redis_addr *addr,
               const char *name, double command_timeout,
               redis_conn_ready_fn *ready, void *arg)
{
    struct redis_conn *rc = xcalloc(1, sizeof *rc);
    double tick = command_timeout / 4;
    int n;

    assert(command_timeout > 0);
    rc->loop = loop;
    rc->addr = *addr;
    n = snprintf(rc->name, sizeof rc->name, "%s", name ? name : "redis");
    if (n < 0)
        rc->name[0] = '\0';
    rc->command_timeout = command_timeout;
    rc->ready = ready;
    rc->ready_arg = arg;
    rc->state = RC_ST_IDLE;
    rc->backoff = RC_BACKOFF_MIN;
    rc->rng = (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)rc;
    if (rc->rng == 0)
        rc->rng = 1;

    ev_timer_init(&rc->retry_timer, rc_on_retry_timer, 0., 0.);
    rc->retry_timer.data = rc;
    ev_timer_init(&rc->connect_timer, rc_on_connect_timer, 0., 0.);
    rc->connect_timer.data = rc;
    if (tick > RC_WATCHDOG_MAX)
        tick = RC_WATCHDOG_MAX;
    ev_timer_init(&rc->watchdog, rc_on_watchdog, tick, tick);
    rc->watchdog.data = rc;
    ev_timer_start(loop, &rc->watchdog);

    /* The first attempt runs from the loop, like every later one. */
    ev_timer_start(loop, &rc->retry_timer);
    return rc;
}

void
redis_conn_free(struct redis_conn *rc)
{
    if (rc == NULL || rc->state == RC_ST_CLOSED)
        return;
    rc_enter(rc);
    ev_timer_stop(rc->loop, &rc->retry_timer);
    ev_timer_stop(rc->loop, &rc->connect_timer);
    ev_timer_stop(rc->loop, &rc->watchdog);
    rc_set_state(rc, RC_ST_CLOSED);
    rc->in_connect_cb = false;
    if (rc->ac != NULL) {
        /* Callbacks of outstanding commands fire with NULL now, or right
         * after the running callback returns; rc_leave() frees rc. */
        redisAsyncFree(rc->ac);
        if (rc->in_hiredis == 0)
            rc->ac = NULL;
    }
    rc_leave(rc);
}

bool
redis_conn_is_ready(const struct redis_conn *rc)
{
    return rc->state == RC_ST_READY && rc->ac != NULL;
}

size_t
redis_conn_pending(const struct redis_conn *rc)
{
    return rc->n_pending;
}

/*
 * Whether a formatted command is one after which hiredis calls the callback
 * more than once. Such commands go through redis_conn_subscribe() only.
 */
static bool
rc_is_multi_reply(const char *cmd, size_t len)
{
    static const char *const names[] = {"subscribe", "psubscribe",
                                         "monitor", "unsubscribe",
                                         "punsubscribe"};
    const char *name;
    size_t i;

    /* A formatted command starts "*<argc>\r\n$<len>\r\n<name>\r\n". */
    name = memchr(cmd, '\n', len);
    if (name == NULL)
        return false;
    name = memchr(name + 1, '\n', len - (size_t)(name + 1 - cmd));
    if (name == NULL)
        return false;
    name++;
    len -= (size_t)(name - cmd);
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);

        if (len > n + 1 && strncasecmp(name, names[i], n) == 0 &&
            name[n] == '\r')
            return true;
    }
    return false;
}

static enum status
rc_submit(struct redis_conn *rc, enum rc_kind kind, redis_reply_fn *cb,
          void *arg, const char *cmd, size_t len)
{
    struct rc_pending *p;

    if (!redis_conn_is_ready(rc))
        return ST_EREDIS;
    if (kind == RC_KIND_USER && rc_is_multi_reply(cmd, len))
        return ST_EINVAL;
    p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->cb = cb;
    p->arg = arg;
    return rc_send(rc, p, cmd, len);
}

enum status
redis_conn_command(struct redis_conn *rc, redis_reply_fn *cb, void *arg,
                   int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int len;
    enum status st;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return ST_EINVAL;
    st = rc_submit(rc, RC_KIND_USER, cb, arg, cmd, (size_t)len);
    free(cmd);
    return st;
}

enum status
redis_conn_commandf(struct redis_conn *rc, redis_reply_fn *cb, void *arg,
                    const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len;
    enum status st;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return ST_EINVAL;
    st = rc_submit(rc, RC_KIND_USER, cb, arg, cmd, (size_t)len);
    free(cmd);
    return st;
}

enum status
redis_conn_subscribe(struct redis_conn *rc, redis_reply_fn *cb, void *arg,
                     const char *channel)
{
    const char *argv[2] = {"SUBSCRIBE", channel};
    char *cmd = NULL;
    int len;
    enum status st;

    len = redisFormatCommandArgv(&cmd, 2, argv, NULL);
    if (len < 0)
        return ST_EINVAL;
    st = rc_submit(rc, RC_KIND_SUBSCRIBE, cb, arg, cmd, (size_t)len);
    free(cmd);
    return st;
}

void
redis_args_init(struct redis_args *a)
{
    a->argv = NULL;
    a->argvlen = NULL;
    a->argc = 0;
    a->cap = 0;
}

void
redis_args_add(struct redis_args *a, const char *data, size_t len)
{
    char *copy;

    if (a->argc == a->cap) {
        int cap = a->cap == 0 ? 16 : a->cap * 2;

        a->argv = xrealloc(a->argv, (size_t)cap * sizeof *a->argv);
        a->argvlen = xrealloc(a->argvlen, (size_t)cap * sizeof *a->argvlen);
        a->cap = cap;
    }
    /* One spare byte keeps every copy NUL-terminated for debugging. */
    copy = xmalloc(len + 1);
    if (len > 0)
        memcpy(copy, data, len);
    copy[len] = '\0';
    a->argv[a->argc] = copy;
    a->argvlen[a->argc] = len;
    a->argc++;
}

void
redis_args_add_str(struct redis_args *a, const char *s)
{
    redis_args_add(a, s, strlen(s));
}

void
redis_args_add_int(struct redis_args *a, long long value)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", value);

    assert(n > 0 && (size_t)n < sizeof num);
    redis_args_add(a, num, (size_t)n);
}

void
redis_args_fini(struct redis_args *a)
{
    int i;

    for (i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    free(a->argvlen);
    redis_args_init(a);
}

enum status
redis_conn_command_args(struct redis_conn *rc, redis_reply_fn *cb, void *arg,
                        const struct redis_args *a)
{
    /* hiredis takes const char ** and never writes through it. */
    const char **argv = xmalloc(((size_t)a->argc + 1) * sizeof *argv);
    enum status st;
    int i;

    for (i = 0; i < a->argc; i++)
        argv[i] = a->argv[i];
    st = redis_conn_command(rc, cb, arg, a->argc, argv, a->argvlen);
    free(argv);
    return st;
}
