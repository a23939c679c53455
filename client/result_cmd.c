/* SPDX-License-Identifier: MIT */
/*
 * "mxprobe result ID...": one GET of <prefix>result:<id> per id, decoded
 * with the result codec and printed in input order. An id without a result
 * is reported on standard error and makes the exit code 1, but the other
 * ids are still printed.
 */
#include "result_cmd.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <string.h>

#include "cli.h"
#include "codec.h"
#include "keys.h"
#include "output.h"

/* Seconds to connect and to wait for each reply. */
#define RESULT_REDIS_TIMEOUT 10.0

enum result_opt {
    RESULT_OPT_FORMAT,
    RESULT_NOPTS
};

static const struct cli_option result_opts[] = {
    [RESULT_OPT_FORMAT] = {"format", 'f', true},
};

_Static_assert(sizeof result_opts / sizeof result_opts[0] == RESULT_NOPTS,
               "result_opts must list every option");

void
result_cmd_usage(FILE *out)
{
    fputs("Usage: mxprobe result [options] ID...\n"
          "\n"
          "Prints the stored result of each job id (for jobs submitted by\n"
          "mxprobe submit, the id is BATCH:LINE). Results stay in Redis\n"
          "for --result-ttl seconds after the job finished.\n"
          "\n"
          "Options:\n"
          "  -f, --format FORMAT  json (one JSON object per line, the\n"
          "                       default) or csv (with a header row)\n"
          "  --redis URL          Redis server (MXPROBE_REDIS)\n"
          "  --prefix PREFIX      key prefix (MXPROBE_PREFIX)\n"
          "\n"
          "Exit status: 0 when every id had a result, 1 when one had none\n"
          "or Redis failed, 2 for invalid arguments.\n",
          out);
}

/*
 * Fetches and prints the result of id. Returns false after writing an
 * error when there is none or it cannot be read.
 */
static bool
print_one(redisContext *c, const struct keys *keys, const char *id,
          enum output_format format)
{
    char key[KEYS_NAME_MAX];
    struct result res;
    redisReply *r;
    bool ok = false;

    keys_name(keys, KEY_RESULT, id, key, sizeof key);
    r = redisCommand(c, "GET %s", key);
    if (r == NULL) {
        cli_error("GET %s failed: %s", key, c->errstr);
        return false;
    }
    if (r->type == REDIS_REPLY_NIL) {
        cli_error("no result for job id \"%s\" (key %s): the job has not "
                  "finished yet, or its result expired", id, key);
    } else if (r->type != REDIS_REPLY_STRING) {
        cli_error("GET %s failed: %s", key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "not a string");
    } else if (codec_decode_result(r->str, r->len, &res) != ST_OK) {
        cli_error("key %s does not hold a result map", key);
    } else {
        output_result(stdout, format, &res);
        codec_result_fini(&res);
        ok = true;
    }
    freeReplyObject(r);
    return ok;
}

static int
run(const struct cli_args *args, const struct config *cfg,
    enum output_format format)
{
    struct keys keys;
    redisContext *c;
    int rc = CLI_EXIT_OK;

    keys_init(&keys, cfg->prefix);
    c = cli_redis_connect(cfg, RESULT_REDIS_TIMEOUT);
    if (c == NULL)
        return CLI_EXIT_FAIL;

    if (format == OUTPUT_CSV)
        output_csv_header(stdout);
    for (size_t i = 0; i < args->n_positional; i++) {
        if (!print_one(c, &keys, args->positional[i], format))
            rc = CLI_EXIT_FAIL;
    }
    redisFree(c);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("writing to standard output failed");
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}

/* Checks the arguments; returns false after writing the error. */
static bool
check_args(const struct cli_args *args, enum output_format *format)
{
    const char *name = args->values[RESULT_OPT_FORMAT];

    *format = OUTPUT_JSONL;
    if (name != NULL && !output_format_parse(name, format)) {
        cli_error("invalid --format \"%s\"; use json or csv", name);
        return false;
    }
    if (args->n_positional == 0) {
        cli_error("result needs at least one job id; see mxprobe help "
                  "result");
        return false;
    }
    for (size_t i = 0; i < args->n_positional; i++) {
        if (!cli_valid_id(args->positional[i])) {
            cli_error("invalid job id \"%s\": ids are 1 to %d bytes "
                      "without control characters",
                      args->positional[i], JOB_ID_MAX);
            return false;
        }
    }
    return true;
}

int
result_cmd_main(int argc, char **argv)
{
    struct cli_args args;
    struct config cfg;
    enum output_format format;
    char err[256];
    int rc;

    if (cli_parse(result_opts, RESULT_NOPTS, argc, argv, &args, err,
                  sizeof err) != ST_OK) {
        cli_error("%s; see mxprobe help result", err);
        cli_args_fini(&args);
        return CLI_EXIT_USAGE;
    }
    if (args.help) {
        result_cmd_usage(stdout);
        cli_args_fini(&args);
        return CLI_EXIT_OK;
    }
    if (!check_args(&args, &format) ||
        cli_load_config(&args, &cfg) != ST_OK) {
        cli_args_fini(&args);
        return CLI_EXIT_USAGE;
    }

    rc = run(&args, &cfg, format);
    config_free(&cfg);
    cli_args_fini(&args);
    return rc;
}
