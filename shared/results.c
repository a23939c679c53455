/* SPDX-License-Identifier: MIT */
/*
 * The results writer: encodes each result, computes every key name in C and
 * hands all of it to one Lua script, so that the results, the batch counters,
 * the XACK and the requeue happen in one atomic step on the server. It sends
 * EVAL every time, because the script (about 1.5 KB of source) is small next
 * to the results it carries.
 */
#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "results.h"
#include "verdict.h"

/*
 * ARGV layout (every key name is complete, prefix included):
 *   1 number of jobs   2 result TTL (s)   3 results stream
 *   4 ack stream   5 ack group   6 number of ack ids
 *   7 delayed set   8 requeued item or ""   9 due wall ms
 *   10 domain hash or ""   11 catchall channel   12 catch_all value
 *   13 checked_at   14 domain TTL   15 catchall message
 *   then RESULTS_JOB_ARGS per job: done key, id, email, status name,
 *   result map, result key, reply list or "", batch key or ""
 *   then the ack ids.
 * The results stream is capped near 1,000,000 entries (MAXLEN ~), so a
 * client that never trims it cannot fill the server's memory.
 */
static const char results_script[] =
    "local n = tonumber(ARGV[1])\n"
    "local ttl = tonumber(ARGV[2])\n"
    "local written = 0\n"
    "for i = 0, n - 1 do\n"
    "  local o = 15 + i * 8\n"
    "  local status, blob = ARGV[o + 4], ARGV[o + 5]\n"
    "  if redis.call('SET', ARGV[o + 1], '1', 'NX', 'EX', ttl) then\n"
    "    redis.call('XADD', ARGV[3], 'MAXLEN', '~', '1000000', '*',\n"
    "      'id', ARGV[o + 2], 'email', ARGV[o + 3], 'status', status,\n"
    "      'result', blob)\n"
    "    redis.call('SET', ARGV[o + 6], blob, 'EX', ttl)\n"
    "    local reply, batch = ARGV[o + 7], ARGV[o + 8]\n"
    /* The batch and reply keys are named by the client, who may have put
     * a value of another type there. pcall keeps such an error from
     * aborting the script halfway (Redis does not undo the writes made
     * before it), which would lose this job's counters and the XACK. */
    "    if batch ~= '' then\n"
    "      redis.pcall('HINCRBY', batch, 'done', 1)\n"
    "      redis.pcall('HINCRBY', batch, status, 1)\n"
    "      redis.pcall('EXPIRE', batch, ttl)\n"
    "    end\n"
    "    if reply ~= '' then\n"
    "      redis.pcall('RPUSH', reply, blob)\n"
    "      redis.pcall('EXPIRE', reply, ttl)\n"
    "    end\n"
    "    written = written + 1\n"
    "  end\n"
    "end\n"
    /* XACK in slices, because unpack() of thousands of ids fails in Redis
     * 7.0 with "too many results to unpack". */
    "local first = 15 + n * 8 + 1\n"
    "local last = first + tonumber(ARGV[6]) - 1\n"
    "while first <= last do\n"
    "  local upto = math.min(first + 499, last)\n"
    "  redis.call('XACK', ARGV[4], ARGV[5], unpack(ARGV, first, upto))\n"
    "  first = upto + 1\n"
    "end\n"
    "if ARGV[8] ~= '' then\n"
    "  redis.call('ZADD', ARGV[7], ARGV[9], ARGV[8])\n"
    "end\n"
    /* Held jobs of the domain wait for this message, so it goes out even
     * when the answer is unknown. */
    "if ARGV[10] ~= '' then\n"
    "  redis.call('HSET', ARGV[10], 'catch_all', ARGV[12], 'checked_at',\n"
    "    ARGV[13])\n"
    "  redis.call('HDEL', ARGV[10], 'catchall_pending')\n"
    "  if redis.call('TTL', ARGV[10]) < 0 then\n"
    "    redis.call('EXPIRE', ARGV[10], ARGV[14])\n"
    "  end\n"
    "  redis.call('PUBLISH', ARGV[11], ARGV[15])\n"
    "end\n"
    "return written\n";

#define RESULTS_JOB_ARGS 8

static void
results_add_key(struct redis_args *a, const struct keys *keys,
                enum key_kind kind, const char *suffix)
{
    char name[KEYS_NAME_MAX];

    redis_args_add_str(a, keys_name(keys, kind, suffix, name, sizeof name));
}

/* Appends one job's arguments; ST_EINVAL when a required field is missing. */
static enum status
results_add_job(struct redis_args *a, const struct keys *keys,
                const struct job *job, const struct result *res)
{
    msgpack_sbuffer sb;
    enum status st;

    if (job->entry == NULL || job->entry[0] == '\0' || res->id == NULL ||
        res->email == NULL)
        return ST_EINVAL;

    msgpack_sbuffer_init(&sb);
    st = codec_encode_result(res, &sb);
    if (st != ST_OK)
        goto out_destroy_sb;

    results_add_key(a, keys, KEY_DONE, job->entry);
    redis_args_add_str(a, res->id);
    redis_args_add_str(a, res->email);
    redis_args_add_str(a, verdict_status_str(res->status));
    redis_args_add(a, sb.data, sb.size);
    results_add_key(a, keys, KEY_RESULT, res->id);
    /* The reply list is the caller's own key, used as given. */
    redis_args_add_str(a, job->reply != NULL ? job->reply : "");
    if (job->batch != NULL && job->batch[0] != '\0')
        results_add_key(a, keys, KEY_BATCH, job->batch);
    else
        redis_args_add_str(a, "");

out_destroy_sb:
    msgpack_sbuffer_destroy(&sb);
    return st;
}

static void
results_add_catch_all(struct redis_args *a, const struct keys *keys,
                      const struct results_write *w)
{
    bool set = w->catch_all_hash != NULL;

    redis_args_add_str(a, set ? w->catch_all_hash : "");
    results_add_key(a, keys, KEY_CATCHALL, NULL);
    redis_args_add_str(a, set && w->catch_all_value != NULL
                              ? w->catch_all_value
                              : "unknown");
    redis_args_add_int(a, (long long)w->checked_at);
    redis_args_add_int(a, w->domain_ttl > 0 ? w->domain_ttl : 3600);
    if (set && w->catch_all_message_len > 0)
        redis_args_add(a, w->catch_all_message, w->catch_all_message_len);
    else
        redis_args_add_str(a, "");
}

static void
results_add_header(struct redis_args *a, const struct keys *keys,
                   const struct results_write *w)
{
    char name[KEYS_NAME_MAX];

    redis_args_add_str(a, "EVAL");
    redis_args_add(a, results_script, sizeof results_script - 1);
    /* NOTE: every key travels in ARGV with numkeys 0, which a single Redis
     * accepts; Redis Cluster would need them declared in KEYS. */
    redis_args_add_int(a, 0);
    redis_args_add_int(a, (long long)w->n);
    redis_args_add_int(a, w->result_ttl);
    results_add_key(a, keys, KEY_RESULTS, NULL);
    redis_args_add_str(a, keys_name(keys, w->ack_stream, NULL, name,
                                    sizeof name));
    redis_args_add_str(a, w->ack_group != NULL ? w->ack_group : "");
    redis_args_add_int(a, (long long)w->n_ack);
    results_add_key(a, keys, KEY_DELAYED, NULL);
    if (w->requeue_len > 0)
        redis_args_add(a, w->requeue, w->requeue_len);
    else
        redis_args_add_str(a, "");
    redis_args_add_int(a, (long long)w->requeue_due_ms);
    results_add_catch_all(a, keys, w);
}

enum status
results_write(struct redis_conn *rc, const struct keys *keys,
              const struct results_write *w, redis_reply_fn *cb, void *arg)
{
    struct redis_args a;
    enum status st = ST_OK;
    size_t i;

    if (w->result_ttl <= 0 || (w->n_ack > 0 && w->ack_group == NULL))
        return ST_EINVAL;
    if (w->ack_stream != KEY_JOBS && w->ack_stream != KEY_PROBES)
        return ST_EINVAL;
    if (!redis_conn_is_ready(rc))
        return ST_EREDIS;

    redis_args_init(&a);
    results_add_header(&a, keys, w);
    for (i = 0; i < w->n && st == ST_OK; i++)
        st = results_add_job(&a, keys, &w->jobs[i], &w->results[i]);
    for (i = 0; i < w->n_ack && st == ST_OK; i++)
        redis_args_add_str(&a, w->ack_ids[i]);
    assert(st != ST_OK ||
           (size_t)a.argc == 3 + 15 + w->n * RESULTS_JOB_ARGS + w->n_ack);

    if (st == ST_OK)
        st = redis_conn_command_args(rc, cb, arg, &a);
    redis_args_fini(&a);
    return st;
}
