/* SPDX-License-Identifier: MIT */
/*
 * redis_conn against a real redis-server on loopback. Covered: the
 * handshake, replies in order and exactly once, NULL replies when the server
 * dies, and reconnects after a restart on the same port. Also the watchdog on
 * a command that hangs, freeing from inside a callback, subscriptions,
 * AUTH/SELECT and unix sockets.
 */
#include <ev.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_fixture.h"

/* What the callbacks of one test saw. */
struct probe {
    int ready;          /* ready callbacks */
    int replies;        /* non-NULL replies */
    int nulls;          /* NULL replies */
    int calls_inside;   /* callbacks fired from inside a command call */
    bool inside;        /* set around redis_conn_command() */
    int out_of_order;
    long long next;     /* the INCR value expected next */
    struct redis_conn *free_me;  /* freed by the next reply callback */
    char last[64];      /* last string reply */
    size_t last_len;
};

static void
on_ready(struct redis_conn *rc, void *arg)
{
    struct probe *p = arg;

    (void)rc;
    p->ready++;
}

static void
on_reply(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct probe *p = arg;

    (void)rc;
    if (p->inside)
        p->calls_inside++;
    if (reply == NULL) {
        p->nulls++;
        return;
    }
    p->replies++;
    /* A published message is the array ["message", channel, payload]. */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
        reply = reply->element[2];
    if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof p->last) {
        memcpy(p->last, reply->str, reply->len);
        p->last_len = reply->len;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer != p->next)
            p->out_of_order++;
        p->next++;
    }
}

static void
on_reply_free(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct probe *p = arg;

    on_reply(rc, reply, arg);
    if (p->free_me != NULL) {
        struct redis_conn *victim = p->free_me;

        p->free_me = NULL;
        redis_conn_free(victim);
    }
}

/* Runs the loop until *counter reaches target or secs pass. */
static bool
wait_for(struct ev_loop *loop, const int *counter, int target, double secs)
{
    double until = ev_time() + secs;

    while (*counter < target && ev_time() < until) {
        ev_now_update(loop);
        ev_run(loop, EVRUN_NOWAIT);
        redis_fixture_sleep_ms(2);
    }
    return *counter >= target;
}

/* Runs the loop for secs whatever happens. */
static void
run_for(struct ev_loop *loop, double secs)
{
    int never = 0;

    wait_for(loop, &never, 1, secs);
}

static void
tcp_addr(struct redis_addr *a, const struct redis_fixture *f)
{
    memset(a, 0, sizeof *a);
    snprintf(a->host, sizeof a->host, "127.0.0.1");
    a->port = f->port;
}

static void
test_round_trip(struct ev_loop *loop, struct redis_fixture *f)
{
    static const char value[] = "a\0b\r\nc";
    const char *argv[3] = {"SET", "rc:bin", value};
    size_t argvlen[3] = {3, 6, sizeof value - 1};
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "rt", 5.0, on_ready, &p);
    CHECK(!redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_command(rc, on_reply, &p, 3, argv, argvlen),
              ST_EREDIS);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    CHECK(redis_conn_is_ready(rc));

    p.inside = true;
    CHECK_INT(redis_conn_command(rc, on_reply, &p, 3, argv, argvlen), ST_OK);
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "GET %s", "rc:bin"),
              ST_OK);
    p.inside = false;
    CHECK_INT(redis_conn_pending(rc), 2);
    CHECK(wait_for(loop, &p.replies, 2, 5.0));
    CHECK_INT(p.calls_inside, 0);
    CHECK_INT(p.last_len, sizeof value - 1);
    CHECK(memcmp(p.last, value, sizeof value - 1) == 0);
    CHECK_INT(redis_conn_pending(rc), 0);
    CHECK_INT(p.nulls, 0);

    /* Commands with several replies per call must use their own API. */
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "SUBSCRIBE x"),
              ST_EINVAL);
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "monitor"), ST_EINVAL);
    run_for(loop, 0.05);
    CHECK_INT(p.replies, 2);
    CHECK_INT(p.ready, 1);
    redis_conn_free(rc);
}

static void
test_exactly_once_in_order(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct redis_args args;
    struct redis_addr a;
    struct redis_conn *rc;
    int i;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "order", 5.0, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "DEL rc:ctr"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    p.next = 1;
    p.replies = 0;
    redis_args_init(&args);
    redis_args_add_str(&args, "INCRBY");
    redis_args_add_str(&args, "rc:ctr");
    redis_args_add_int(&args, 1);
    for (i = 0; i < 500; i++)
        CHECK_INT(redis_conn_command_args(rc, on_reply, &p, &args), ST_OK);
    redis_args_fini(&args);
    CHECK_INT(args.argc, 0);
    CHECK_INT(redis_conn_pending(rc), 500);
    CHECK(wait_for(loop, &p.replies, 500, 10.0));
    run_for(loop, 0.05);
    CHECK_INT(p.replies, 500);
    CHECK_INT(p.nulls, 0);
    CHECK_INT(p.out_of_order, 0);
    CHECK_INT(redis_conn_pending(rc), 0);

    /* A NULL callback is accepted and still counted while pending. */
    CHECK_INT(redis_conn_commandf(rc, NULL, NULL, "PING"), ST_OK);
    CHECK_INT(redis_conn_pending(rc), 1);
    run_for(loop, 0.1);
    CHECK_INT(redis_conn_pending(rc), 0);
    redis_conn_free(rc);
}

static void
test_kill_and_restart(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "restart", 30.0, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));

    /* BLPOP with timeout 0 never returns on its own. */
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "BLPOP rc:never 0"),
              ST_OK);
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_OK);
    run_for(loop, 0.1);
    CHECK_INT(p.replies, 0);
    redis_fixture_stop(f, SIGKILL);
    CHECK(wait_for(loop, &p.nulls, 2, 5.0));
    run_for(loop, 0.3);
    CHECK_INT(p.nulls, 2);
    CHECK_INT(p.replies, 0);
    CHECK(!redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_pending(rc), 0);
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_EREDIS);

    /* The backoff keeps trying while the port is closed. */
    run_for(loop, 0.5);
    CHECK_INT(p.ready, 1);
    CHECK(redis_fixture_start(f));
    CHECK(wait_for(loop, &p.ready, 2, 8.0));
    CHECK(redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    CHECK_INT(p.nulls, 2);
    redis_conn_free(rc);
}

static void
test_watchdog(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;
    double start;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "watchdog", 0.5, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "BLPOP rc:hang 0"),
              ST_OK);
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_OK);
    start = ev_time();
    CHECK(wait_for(loop, &p.nulls, 2, 5.0));
    /* Not before command_timeout, and not much after it. */
    CHECK(ev_time() - start >= 0.45);
    CHECK(ev_time() - start < 2.5);
    CHECK_INT(p.replies, 0);
    CHECK(wait_for(loop, &p.ready, 2, 5.0));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    run_for(loop, 0.1);
    CHECK_INT(p.nulls, 2);
    redis_conn_free(rc);
}

/* The watchdog's NULL reply frees the connection from inside the drop. */
static void
test_free_in_watchdog_drop(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "watchfree", 0.3, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    p.free_me = rc;
    CHECK_INT(redis_conn_commandf(rc, on_reply_free, &p, "BLPOP rc:h2 0"),
              ST_OK);
    CHECK_INT(redis_conn_commandf(rc, on_reply_free, &p, "PING"), ST_OK);
    CHECK(wait_for(loop, &p.nulls, 2, 5.0));
    run_for(loop, 0.5);
    CHECK(p.free_me == NULL);
    CHECK_INT(p.nulls, 2);
    CHECK_INT(p.replies, 0);
    CHECK_INT(p.ready, 1);
}

/*
 * A listener that never accepts: the connect, or else the handshake, must
 * time out and be retried, and the connection must never become ready.
 */
static void
test_connect_deadline(struct ev_loop *loop)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(lfd, 0) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
    /* Fill the accept queue so that later SYNs are dropped. */
    CHECK(connect(filler, (struct sockaddr *)&sa, sizeof sa) == 0);

    memset(&a, 0, sizeof a);
    snprintf(a.host, sizeof a.host, "localhost");
    a.port = ntohs(sa.sin_port);
    rc = redis_conn_new(loop, &a, "deadline", 0.3, on_ready, &p);
    run_for(loop, 1.2);
    CHECK_INT(p.ready, 0);
    CHECK(!redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_EREDIS);
    redis_conn_free(rc);
    close(filler);
    close(lfd);
    CHECK_INT(p.replies + p.nulls, 0);
}

static void
test_free_with_pending(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;
    int i;

    tcp_addr(&a, f);
    rc = redis_conn_new(loop, &a, "free", 5.0, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));

    /* From outside any callback: every callback fires inside the free. */
    for (i = 0; i < 3; i++)
        CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_OK);
    redis_conn_free(rc);
    CHECK_INT(p.nulls, 3);
    run_for(loop, 0.1);
    CHECK_INT(p.nulls + p.replies, 3);

    /* From inside a reply callback: the rest get NULL, once each. */
    memset(&p, 0, sizeof p);
    rc = redis_conn_new(loop, &a, "free2", 5.0, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    p.free_me = rc;
    CHECK_INT(redis_conn_commandf(rc, on_reply_free, &p, "PING"), ST_OK);
    for (i = 0; i < 4; i++)
        CHECK_INT(redis_conn_commandf(rc, on_reply_free, &p, "PING"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    run_for(loop, 0.2);
    CHECK_INT(p.replies + p.nulls, 5);
    CHECK(p.free_me == NULL);

    /* Freed while still connecting (nothing listens on the port). */
    a.port = redis_fixture_free_port();
    memset(&p, 0, sizeof p);
    rc = redis_conn_new(loop, &a, "nobody", 0.3, on_ready, &p);
    run_for(loop, 0.6);
    CHECK_INT(p.ready, 0);
    CHECK(!redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "PING"), ST_EREDIS);
    redis_conn_free(rc);
    redis_conn_free(NULL);
    run_for(loop, 0.1);
    CHECK_INT(p.replies + p.nulls, 0);
}

struct ready_free {
    struct redis_conn *rc;
    int ready;
};

static void
on_ready_free(struct redis_conn *rc, void *arg)
{
    struct ready_free *rf = arg;

    rf->ready++;
    redis_conn_free(rc);
    rf->rc = NULL;
}

static void
test_free_from_ready(struct ev_loop *loop, struct redis_fixture *f)
{
    struct ready_free rf = {0};
    struct redis_addr a;

    tcp_addr(&a, f);
    rf.rc = redis_conn_new(loop, &a, "readyfree", 5.0, on_ready_free, &rf);
    CHECK(wait_for(loop, &rf.ready, 1, 5.0));
    run_for(loop, 0.1);
    CHECK(rf.rc == NULL);
    CHECK_INT(rf.ready, 1);
}

static void
test_subscribe(struct ev_loop *loop, struct redis_fixture *f)
{
    struct probe p = {0};
    struct probe q = {0};
    struct redis_addr a;
    struct redis_conn *sub;
    struct redis_conn *pub;

    tcp_addr(&a, f);
    sub = redis_conn_new(loop, &a, "sub", 5.0, on_ready, &p);
    pub = redis_conn_new(loop, &a, "pub", 5.0, on_ready, &q);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    CHECK(wait_for(loop, &q.ready, 1, 5.0));
    CHECK_INT(redis_conn_subscribe(sub, on_reply, &p, "rc:chan"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    CHECK_INT(redis_conn_commandf(pub, on_reply, &q, "PUBLISH rc:chan %b",
                                  "hi\0there", (size_t)8), ST_OK);
    CHECK(wait_for(loop, &p.replies, 2, 5.0));
    CHECK_INT(p.last_len, 8);
    CHECK(memcmp(p.last, "hi\0there", 8) == 0);
    CHECK_INT(redis_conn_pending(sub), 0);

    redis_conn_free(sub);
    CHECK_INT(p.nulls, 1);
    run_for(loop, 0.1);
    CHECK_INT(p.nulls, 1);
    CHECK_INT(p.replies, 2);
    redis_conn_free(pub);
}

static void
test_auth_select_unix(struct ev_loop *loop)
{
    struct redis_fixture g;
    struct probe p = {0};
    struct redis_addr a;
    struct redis_conn *rc;
    const char *get[2] = {"GET", "rc:db"};
    const char *sel[2] = {"SELECT", "3"};
    redisContext *c;
    redisReply *r;

    CHECK(redis_fixture_init(&g, "s3cret pass"));
    memset(&a, 0, sizeof a);
    snprintf(a.path, sizeof a.path, "%s", g.sock);
    snprintf(a.password, sizeof a.password, "%s", g.password);
    a.db = 3;
    rc = redis_conn_new(loop, &a, "auth", 5.0, on_ready, &p);
    CHECK(wait_for(loop, &p.ready, 1, 5.0));
    CHECK_INT(redis_conn_commandf(rc, on_reply, &p, "SET rc:db here"), ST_OK);
    CHECK(wait_for(loop, &p.replies, 1, 5.0));
    redis_conn_free(rc);

    c = redis_fixture_connect(&g);
    CHECK(c != NULL);
    if (c != NULL) {
        r = redisCommandArgv(c, 2, sel, NULL);
        freeReplyObject(r);
        r = redisCommandArgv(c, 2, get, NULL);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            CHECK_STR(r->str, "here");
        freeReplyObject(r);
        redisFree(c);
    }

    /* A wrong password never gets ready, and is retried quietly. */
    memset(&p, 0, sizeof p);
    snprintf(a.password, sizeof a.password, "wrong");
    rc = redis_conn_new(loop, &a, "badauth", 5.0, on_ready, &p);
    run_for(loop, 0.8);
    CHECK_INT(p.ready, 0);
    CHECK(!redis_conn_is_ready(rc));
    CHECK_INT(redis_conn_pending(rc) <= 3, 1);
    redis_conn_free(rc);
    redis_fixture_fini(&g);
}

int
main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct redis_fixture f;

    signal(SIGPIPE, SIG_IGN);
    log_setup("test", NULL, LOG_LVL_INFO);
    if (!redis_fixture_init(&f, NULL)) {
        fprintf(stderr, "test_redis_conn: cannot start redis-server; is it "
                "installed and on PATH?\n");
        return 1;
    }
    test_round_trip(loop, &f);
    test_exactly_once_in_order(loop, &f);
    test_free_with_pending(loop, &f);
    test_free_from_ready(loop, &f);
    test_subscribe(loop, &f);
    test_watchdog(loop, &f);
    test_free_in_watchdog_drop(loop, &f);
    test_connect_deadline(loop);
    test_kill_and_restart(loop, &f);
    test_auth_select_unix(loop);
    redis_fixture_fini(&f);
    ev_loop_destroy(loop);
    return check_exit("test_redis_conn");
}
