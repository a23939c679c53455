/* SPDX-License-Identifier: MIT */
/*
 * Per-MX concurrency and rate limits with one Lua script, so the check and
 * the take are one atomic step for the whole fleet. The time comes from the
 * worker's clock as an argument, which keeps the script deterministic;
 * fleet clocks only need to agree to well under a lease.
 */
#include "ratelimit.h"

#include <stdlib.h>

#include "log.h"
#include "xalloc.h"

/*
 * KEYS[1] sorted set of leases (member = token, score = expiry in ms),
 * KEYS[2] counter of this minute's sessions.
 * ARGV: now ms, lease ms, concurrency, rate, token.
 * Returns 1 granted, 0 busy, -1 rate used up.
 */
static const char take_script[] =
    "local now = tonumber(ARGV[1])\n"
    "local lease = tonumber(ARGV[2])\n"
    "local conc = tonumber(ARGV[3])\n"
    "local rate = tonumber(ARGV[4])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if conc > 0 and redis.call('ZCARD', KEYS[1]) >= conc then\n"
    "  return 0\n"
    "end\n"
    "if rate > 0 then\n"
    "  local used = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "  if used >= rate then return -1 end\n"
    "  if redis.call('INCR', KEYS[2]) == 1 then\n"
    "    redis.call('EXPIRE', KEYS[2], 60)\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now + lease, ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], lease)\n"
    "return 1\n";

struct take_request {
    ratelimit_done_fn *cb;
    void *arg;
};

const char *
ratelimit_answer_str(enum ratelimit_answer answer)
{
    switch (answer) {
    case RL_GRANTED:
        return "granted";
    case RL_BUSY:
        return "busy";
    case RL_RATE:
        return "rate";
    case RL_ERROR:
        return "error";
    default:
        return "invalid";
    }
}

static void
on_take_reply(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct take_request *req = arg;
    enum ratelimit_answer answer = RL_ERROR;

    (void)rc;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == 1)
            answer = RL_GRANTED;
        else if (reply->integer == 0)
            answer = RL_BUSY;
        else
            answer = RL_RATE;
    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_warn(NULL, "ev=ratelimit_error st=eredis err=%.200s", reply->str);
    }
    req->cb(req->arg, answer);
    free(req);
}

enum status
ratelimit_take(struct ratelimit *rl, const char *host, const char *token,
               int64_t now_ms, ratelimit_done_fn *cb, void *arg)
{
    char inflight[KEYS_NAME_MAX];
    char rate[KEYS_NAME_MAX];
    struct redis_args a;
    struct take_request *req;
    enum status st;

    keys_name(rl->keys, KEY_MX_INFLIGHT, host, inflight, sizeof inflight);
    keys_name(rl->keys, KEY_MX_RATE, host, rate, sizeof rate);
    redis_args_init(&a);
    redis_args_add_str(&a, "EVAL");
    redis_args_add_str(&a, take_script);
    redis_args_add_str(&a, "2");
    redis_args_add_str(&a, inflight);
    redis_args_add_str(&a, rate);
    redis_args_add_int(&a, (long long)now_ms);
    redis_args_add_int(&a, (long long)rl->lease_ms);
    redis_args_add_int(&a, rl->concurrency);
    redis_args_add_int(&a, rl->rate);
    redis_args_add_str(&a, token);

    req = xmalloc(sizeof *req);
    req->cb = cb;
    req->arg = arg;
    st = redis_conn_command_args(rl->rc, on_take_reply, req, &a);
    if (st != ST_OK)
        free(req);
    redis_args_fini(&a);
    return st;
}

enum status
ratelimit_renew(struct ratelimit *rl, const char *host, const char *token,
                int64_t now_ms)
{
    char inflight[KEYS_NAME_MAX];
    enum status st;

    keys_name(rl->keys, KEY_MX_INFLIGHT, host, inflight, sizeof inflight);
    /* XX: a lease that already expired is not brought back. */
    st = redis_conn_commandf(rl->rc, NULL, NULL, "ZADD %s XX %lld %s", inflight,
                             (long long)(now_ms + rl->lease_ms), token);
    if (st != ST_OK)
        return st;
    return redis_conn_commandf(rl->rc, NULL, NULL, "PEXPIRE %s %lld", inflight,
                               (long long)rl->lease_ms);
}

enum status
ratelimit_release(struct ratelimit *rl, const char *host, const char *token)
{
    char inflight[KEYS_NAME_MAX];

    keys_name(rl->keys, KEY_MX_INFLIGHT, host, inflight, sizeof inflight);
    return redis_conn_commandf(rl->rc, NULL, NULL, "ZREM %s %s", inflight,
                               token);
}
