/* SPDX-License-Identifier: MIT */
/*
 * results_write() against a real redis-server: what one script call leaves
 * in the results stream, the result keys, reply lists and batch counters;
 * that a second result for the same jobs entry writes nothing; that the
 * stream entries are acknowledged; and that a probe item lands on the
 * delayed set with its due time.
 */
#include <ev.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "codec.h"
#include "keys.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_fixture.h"
#include "results.h"

#define TTL 600
#define NJOBS 3

struct outcome {
    int calls;
    int nulls;
    long long written;   /* integer reply, -1 for any other reply */
};

static void
on_ready(struct redis_conn *rc, void *arg)
{
    int *ready = arg;

    (void)rc;
    (*ready)++;
}

static void
on_written(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct outcome *o = arg;

    (void)rc;
    o->calls++;
    if (reply == NULL) {
        o->nulls++;
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "script error: %s\n", reply->str);
    o->written = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
}

static bool
wait_for(struct ev_loop *loop, const int *counter, int target, double secs)
{
    double until = ev_time() + secs;

    while (*counter < target && ev_time() < until) {
        ev_now_update(loop);
        ev_run(loop, EVRUN_NOWAIT);
        redis_fixture_sleep_ms(1);
    }
    return *counter >= target;
}

/* Sends w and waits for its reply; returns the number written or -1. */
static long long
write_and_wait(struct ev_loop *loop, struct redis_conn *rc,
               const struct keys *k, const struct results_write *w)
{
    struct outcome o = {0, 0, -1};

    if (results_write(rc, k, w, on_written, &o) != ST_OK)
        return -2;
    CHECK(wait_for(loop, &o.calls, 1, 10.0));
    CHECK_INT(o.calls, 1);
    CHECK_INT(o.nulls, 0);
    return o.written;
}

/* XADDs count jobs and reads them into the coordinator group. */
static int
add_and_claim(const struct redis_fixture *f, const char *stream,
              const char *group, int count, char ids[][32])
{
    const char *xadd[5] = {"XADD", stream, "*", "email", "x@example.test"};
    const char *xread[9] = {"XREADGROUP", "GROUP", group, "c1", "COUNT",
                            "100000", "STREAMS", stream, ">"};
    const char *create[6] = {"XGROUP", "CREATE", stream, group, "0",
                             "MKSTREAM"};
    redisReply *r;
    int i;
    int got = 0;

    r = redis_fixture_cmd(f, 6, create, NULL);
    freeReplyObject(r);
    for (i = 0; i < count; i++) {
        r = redis_fixture_cmd(f, 5, xadd, NULL);
        freeReplyObject(r);
    }
    r = redis_fixture_cmd(f, 9, xread, NULL);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *entries = r->element[0]->element[1];
        size_t j;

        for (j = 0; j < entries->elements && got < count; j++) {
            snprintf(ids[got], 32, "%s", entries->element[j]->element[0]->str);
            got++;
        }
    }
    freeReplyObject(r);
    return got;
}

static long long
pending_count(const struct redis_fixture *f, const char *stream,
              const char *group)
{
    const char *argv[3] = {"XPENDING", stream, group};
    redisReply *r = redis_fixture_cmd(f, 3, argv, NULL);
    long long n = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* The string value of a command's reply, compared with want. */
static bool
reply_equals(const struct redis_fixture *f, int argc, const char **argv,
             const char *want, size_t want_len)
{
    redisReply *r = redis_fixture_cmd(f, argc, argv, NULL);
    bool same = r != NULL && r->type == REDIS_REPLY_STRING &&
                r->len == want_len && memcmp(r->str, want, want_len) == 0;

    freeReplyObject(r);
    return same;
}

static long long
int_of_string_reply(const struct redis_fixture *f, int argc,
                    const char **argv)
{
    redisReply *r = redis_fixture_cmd(f, argc, argv, NULL);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

struct fixture_jobs {
    char entries[NJOBS + 1][160];
    char ids[NJOBS + 1][16];
    char emails[NJOBS + 1][32];
    struct job jobs[NJOBS + 1];
    struct result results[NJOBS + 1];
    const char *ack[NJOBS + 1];
};

static void
make_jobs(struct fixture_jobs *fj)
{
    static const enum verdict_status statuses[] = {
        VS_DELIVERABLE, VS_UNDELIVERABLE, VS_RISKY, VS_UNKNOWN};
    int i;

    for (i = 0; i <= NJOBS; i++) {
        struct job *j = &fj->jobs[i];
        struct result *r = &fj->results[i];

        snprintf(fj->ids[i], sizeof fj->ids[i], "job-%d", i);
        snprintf(fj->emails[i], sizeof fj->emails[i], "user%d@example.test",
                 i);
        memset(j, 0, sizeof *j);
        j->entry = fj->entries[i];
        j->id = fj->ids[i];
        j->email = fj->emails[i];
        j->address = fj->emails[i];
        j->batch = "b1";
        j->reply = i < 2 ? "t:replies" : NULL;
        memset(r, 0, sizeof *r);
        r->id = fj->ids[i];
        r->email = fj->emails[i];
        r->address = fj->emails[i];
        r->status = statuses[i];
        r->reason = VR_ACCEPTED;
        r->catch_all = TRI_UNKNOWN;
        r->has_smtp = true;
        r->smtp.stage = SMTP_STAGE_RCPT;
        r->smtp.code = 250;
        snprintf(r->smtp.text, sizeof r->smtp.text, "2.1.5 ok");
        r->mx = "mx.example.test";
        r->mx_ip = "127.0.0.2";
        r->attempts = 1;
        r->checked_at = 1700000000000;
        fj->ack[i] = fj->entries[i];
    }
}

static void
check_first_write(const struct redis_fixture *f, struct fixture_jobs *fj)
{
    const char *xlen[2] = {"XLEN", "t:results"};
    const char *llen[2] = {"LLEN", "t:replies"};
    const char *get[2] = {"GET", "t:result:job-1"};
    const char *ttl[2] = {"TTL", "t:result:job-1"};
    const char *bttl[2] = {"TTL", "t:batch:b1"};
    const char *lttl[2] = {"TTL", "t:replies"};
    const char *hdone[3] = {"HGET", "t:batch:b1", "done"};
    const char *hdel[3] = {"HGET", "t:batch:b1", "deliverable"};
    const char *hund[3] = {"HGET", "t:batch:b1", "undeliverable"};
    const char *hrisky[3] = {"HGET", "t:batch:b1", "risky"};
    const char *lindex[3] = {"LINDEX", "t:replies", "1"};
    const char *xrange[4] = {"XRANGE", "t:results", "-", "+"};
    msgpack_sbuffer sb;
    redisReply *r;
    long long t;

    CHECK_INT(redis_fixture_int(f, 2, xlen), NJOBS);
    CHECK_INT(redis_fixture_int(f, 2, llen), 2);
    CHECK_INT(pending_count(f, "t:jobs", "coordinator"), 0);
    CHECK_INT(int_of_string_reply(f, 3, hdone), NJOBS);
    CHECK_INT(int_of_string_reply(f, 3, hdel), 1);
    CHECK_INT(int_of_string_reply(f, 3, hund), 1);
    CHECK_INT(int_of_string_reply(f, 3, hrisky), 1);
    t = redis_fixture_int(f, 2, ttl);
    CHECK(t > 0);
    CHECK(t <= TTL);
    t = redis_fixture_int(f, 2, bttl);
    CHECK(t > 0);
    CHECK(t <= TTL);
    t = redis_fixture_int(f, 2, lttl);
    CHECK(t > 0);
    CHECK(t <= TTL);

    /* The stored map is exactly what codec_encode_result() produces. */
    msgpack_sbuffer_init(&sb);
    CHECK_INT(codec_encode_result(&fj->results[1], &sb), ST_OK);
    CHECK(reply_equals(f, 2, get, sb.data, sb.size));
    CHECK(reply_equals(f, 3, lindex, sb.data, sb.size));

    /* Stream fields, in order: id, email, status, result. */
    r = redis_fixture_cmd(f, 4, xrange, NULL);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == NJOBS);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == NJOBS) {
        redisReply *fields = r->element[1]->element[1];

        CHECK_INT(fields->elements, 8);
        if (fields->elements == 8) {
            CHECK_STR(fields->element[0]->str, "id");
            CHECK_STR(fields->element[1]->str, "job-1");
            CHECK_STR(fields->element[2]->str, "email");
            CHECK_STR(fields->element[3]->str, "user1@example.test");
            CHECK_STR(fields->element[4]->str, "status");
            CHECK_STR(fields->element[5]->str, "undeliverable");
            CHECK_STR(fields->element[6]->str, "result");
            CHECK_INT(fields->element[7]->len, sb.size);
            CHECK(fields->element[7]->len == sb.size &&
                  memcmp(fields->element[7]->str, sb.data, sb.size) == 0);
        }
    }
    freeReplyObject(r);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_write_once(struct ev_loop *loop, struct redis_conn *rc,
                const struct redis_fixture *f, const struct keys *k)
{
    static struct fixture_jobs fj;
    struct results_write w;
    const char *xlen[2] = {"XLEN", "t:results"};
    const char *llen[2] = {"LLEN", "t:replies"};
    const char *hdone[3] = {"HGET", "t:batch:b1", "done"};
    const char *hunknown[3] = {"HGET", "t:batch:b1", "unknown"};
    const char *done_ttl[2] = {"TTL", NULL};
    char done_key[64];
    char ids[NJOBS + 1][32];
    int i;

    CHECK_INT(add_and_claim(f, "t:jobs", "coordinator", NJOBS + 1, ids),
              NJOBS + 1);
    make_jobs(&fj);
    for (i = 0; i <= NJOBS; i++)
        snprintf(fj.entries[i], sizeof fj.entries[i], "%s", ids[i]);
    CHECK_INT(pending_count(f, "t:jobs", "coordinator"), NJOBS + 1);

    memset(&w, 0, sizeof w);
    w.jobs = fj.jobs;
    w.results = fj.results;
    w.n = NJOBS;
    w.ack_stream = KEY_JOBS;
    w.ack_group = KEYS_GROUP_COORDINATOR;
    w.ack_ids = fj.ack;
    w.n_ack = NJOBS;
    w.result_ttl = TTL;
    CHECK_INT(write_and_wait(loop, rc, k, &w), NJOBS);
    /* Entry NJOBS was not acknowledged yet. */
    CHECK_INT(pending_count(f, "t:jobs", "coordinator"), 1);
    snprintf(done_key, sizeof done_key, "t:done:%s", ids[0]);
    done_ttl[1] = done_key;
    CHECK(redis_fixture_int(f, 2, done_ttl) > 0);

    /* A second result for the same entries writes nothing. */
    CHECK_INT(write_and_wait(loop, rc, k, &w), 0);
    CHECK_INT(redis_fixture_int(f, 2, xlen), NJOBS);
    CHECK_INT(redis_fixture_int(f, 2, llen), 2);
    CHECK_INT(int_of_string_reply(f, 3, hdone), NJOBS);

    /* One old and one new job: only the new one is written. */
    w.jobs = &fj.jobs[NJOBS - 1];
    w.results = &fj.results[NJOBS - 1];
    w.n = 2;
    w.ack_ids = &fj.ack[NJOBS];
    w.n_ack = 1;
    CHECK_INT(write_and_wait(loop, rc, k, &w), 1);
    CHECK_INT(redis_fixture_int(f, 2, xlen), NJOBS + 1);
    CHECK_INT(int_of_string_reply(f, 3, hdone), NJOBS + 1);
    CHECK_INT(int_of_string_reply(f, 3, hunknown), 1);
    CHECK_INT(pending_count(f, "t:jobs", "coordinator"), 0);
}

static void
test_first_write_contents(struct ev_loop *loop, struct redis_conn *rc,
                          const struct redis_fixture *f,
                          const struct keys *k)
{
    static struct fixture_jobs fj;
    struct results_write w;
    const char *del[6] = {"DEL", "t:results", "t:replies", "t:batch:b1",
                          "t:result:job-1", "t:jobs"};
    char ids[NJOBS][32];
    int i;

    redisReply *r = redis_fixture_cmd(f, 6, del, NULL);
    freeReplyObject(r);
    CHECK_INT(add_and_claim(f, "t:jobs", "coordinator", NJOBS, ids), NJOBS);
    make_jobs(&fj);
    for (i = 0; i < NJOBS; i++)
        snprintf(fj.entries[i], sizeof fj.entries[i], "fresh-%s", ids[i]);
    for (i = 0; i < NJOBS; i++)
        fj.ack[i] = ids[i];
    memset(&w, 0, sizeof w);
    w.jobs = fj.jobs;
    w.results = fj.results;
    w.n = NJOBS;
    w.ack_stream = KEY_JOBS;
    w.ack_group = KEYS_GROUP_COORDINATOR;
    w.ack_ids = fj.ack;
    w.n_ack = NJOBS;
    w.result_ttl = TTL;
    CHECK_INT(write_and_wait(loop, rc, k, &w), NJOBS);
    check_first_write(f, &fj);
}

static void
test_requeue(struct ev_loop *loop, struct redis_conn *rc,
             const struct redis_fixture *f, const struct keys *k)
{
    static const char item[] = "\x82\xa6" "domain\xa4" "a.te\x00\x01";
    const char *zscore[3] = {"ZSCORE", "t:delayed", NULL};
    const char *zcard[2] = {"ZCARD", "t:delayed"};
    const char *ack[1];
    char ids[1][32];
    struct results_write w;
    size_t zlen[3] = {6, 9, sizeof item - 1};
    redisReply *r;

    CHECK_INT(add_and_claim(f, "t:probes", "workers", 1, ids), 1);
    CHECK_INT(pending_count(f, "t:probes", "workers"), 1);
    ack[0] = ids[0];
    memset(&w, 0, sizeof w);
    w.ack_stream = KEY_PROBES;
    w.ack_group = KEYS_GROUP_WORKERS;
    w.ack_ids = ack;
    w.n_ack = 1;
    w.requeue = item;
    w.requeue_len = sizeof item - 1;
    w.requeue_due_ms = 1700000123456;
    w.result_ttl = TTL;
    CHECK_INT(write_and_wait(loop, rc, k, &w), 0);
    CHECK_INT(pending_count(f, "t:probes", "workers"), 0);
    CHECK_INT(redis_fixture_int(f, 2, zcard), 1);
    zscore[2] = item;
    r = redis_fixture_cmd(f, 3, zscore, zlen);
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        CHECK_STR(r->str, "1700000123456");
    freeReplyObject(r);
}

/* A catch-all decision lands in the domain hash with the ack, in one
 * script, and the pending marker goes away. */
static void
test_catch_all_decision(struct ev_loop *loop, struct redis_conn *rc,
                        const struct redis_fixture *f, const struct keys *k)
{
    static const char message[] = "\x81\xa6" "domain\xa6" "c.test";
    const char *hset[4] = {"HSET", "t:domain:c.test", "catchall_pending",
                           "1"};
    const char *hget[3] = {"HGET", "t:domain:c.test", "catch_all"};
    const char *pending[3] = {"HEXISTS", "t:domain:c.test",
                              "catchall_pending"};
    const char *ttl[2] = {"TTL", "t:domain:c.test"};
    const char *ack[1];
    char ids[1][32];
    struct results_write w;
    redisReply *r;

    freeReplyObject(redis_fixture_cmd(f, 4, hset, NULL));
    CHECK_INT(add_and_claim(f, "t:probes", "workers", 1, ids), 1);
    ack[0] = ids[0];
    memset(&w, 0, sizeof w);
    w.ack_stream = KEY_PROBES;
    w.ack_group = KEYS_GROUP_WORKERS;
    w.ack_ids = ack;
    w.n_ack = 1;
    w.result_ttl = TTL;
    w.catch_all_hash = "t:domain:c.test";
    w.catch_all_value = "1";
    w.catch_all_message = message;
    w.catch_all_message_len = sizeof message - 1;
    w.checked_at = 1700000000000;
    w.domain_ttl = 120;
    CHECK_INT(write_and_wait(loop, rc, k, &w), 0);
    CHECK_INT(pending_count(f, "t:probes", "workers"), 0);
    r = redis_fixture_cmd(f, 3, hget, NULL);
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        CHECK_STR(r->str, "1");
    freeReplyObject(r);
    CHECK_INT(redis_fixture_int(f, 3, pending), 0);
    CHECK(redis_fixture_int(f, 2, ttl) > 0);
}

/* 600 jobs with 600 acks cross the script's 500-id XACK slice. */
static void
test_large_batch(struct ev_loop *loop, struct redis_conn *rc,
                 const struct redis_fixture *f, const struct keys *k)
{
    enum { N = 600 };
    static char ids[N][32];
    static char names[N][16];
    static struct job jobs[N];
    static struct result results[N];
    static const char *acks[N];
    const char *hdone[3] = {"HGET", "t:batch:big", "done"};
    struct results_write w;
    int i;

    CHECK_INT(add_and_claim(f, "t:jobs", "coordinator", N, ids), N);
    for (i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "big-%d", i);
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].entry = ids[i];
        jobs[i].id = names[i];
        jobs[i].email = names[i];
        jobs[i].batch = "big";
        memset(&results[i], 0, sizeof results[i]);
        results[i].id = names[i];
        results[i].email = names[i];
        results[i].status = VS_UNKNOWN;
        results[i].reason = VR_TIMEOUT;
        acks[i] = ids[i];
    }
    memset(&w, 0, sizeof w);
    w.jobs = jobs;
    w.results = results;
    w.n = N;
    w.ack_stream = KEY_JOBS;
    w.ack_group = KEYS_GROUP_COORDINATOR;
    w.ack_ids = acks;
    w.n_ack = N;
    w.result_ttl = TTL;
    CHECK_INT(write_and_wait(loop, rc, k, &w), N);
    CHECK_INT(pending_count(f, "t:jobs", "coordinator"), 0);
    CHECK_INT(int_of_string_reply(f, 3, hdone), N);
}

static void
test_rejected(struct ev_loop *loop, struct redis_conn *rc,
              const struct keys *k)
{
    struct outcome o = {0, 0, -1};
    struct job job;
    struct result res;
    struct results_write w;
    struct redis_addr nowhere;
    struct redis_conn *down;

    memset(&job, 0, sizeof job);
    memset(&res, 0, sizeof res);
    res.id = "x";
    res.email = "x";
    memset(&w, 0, sizeof w);
    w.jobs = &job;
    w.results = &res;
    w.n = 1;
    w.ack_stream = KEY_JOBS;
    w.ack_group = KEYS_GROUP_COORDINATOR;
    w.result_ttl = TTL;
    /* No jobs entry: nothing to dedupe on. */
    CHECK_INT(results_write(rc, k, &w, on_written, &o), ST_EINVAL);
    job.entry = "1-1";
    w.result_ttl = 0;
    CHECK_INT(results_write(rc, k, &w, on_written, &o), ST_EINVAL);
    w.result_ttl = TTL;
    w.ack_stream = KEY_RESULTS;
    CHECK_INT(results_write(rc, k, &w, on_written, &o), ST_EINVAL);

    memset(&nowhere, 0, sizeof nowhere);
    snprintf(nowhere.host, sizeof nowhere.host, "127.0.0.1");
    nowhere.port = redis_fixture_free_port();
    down = redis_conn_new(loop, &nowhere, "down", 1.0, NULL, NULL);
    w.ack_stream = KEY_JOBS;
    CHECK_INT(results_write(down, k, &w, on_written, &o), ST_EREDIS);
    redis_conn_free(down);
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(o.calls, 0);
}

int
main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct redis_fixture f;
    struct redis_addr a;
    struct redis_conn *rc;
    struct keys k;
    int ready = 0;

    signal(SIGPIPE, SIG_IGN);
    log_setup("test", NULL, LOG_LVL_INFO);
    if (!redis_fixture_init(&f, NULL)) {
        fprintf(stderr, "test_results: cannot start redis-server; is it "
                "installed and on PATH?\n");
        return 1;
    }
    keys_init(&k, "t:");
    memset(&a, 0, sizeof a);
    snprintf(a.host, sizeof a.host, "127.0.0.1");
    a.port = f.port;
    rc = redis_conn_new(loop, &a, "results", 10.0, on_ready, &ready);
    CHECK(wait_for(loop, &ready, 1, 5.0));

    test_write_once(loop, rc, &f, &k);
    test_first_write_contents(loop, rc, &f, &k);
    test_requeue(loop, rc, &f, &k);
    test_catch_all_decision(loop, rc, &f, &k);
    test_large_batch(loop, rc, &f, &k);
    test_rejected(loop, rc, &k);

    redis_conn_free(rc);
    redis_fixture_fini(&f);
    ev_loop_destroy(loop);
    return check_exit("test_results");
}
