/* SPDX-License-Identifier: MIT */
/*
 * Code that every mxprobe subcommand shares. It splits the arguments into
 * the subcommand's own options, positional arguments and the fleet's
 * settings (--redis, --prefix and the rest, which go to config_load()). It
 * also writes error messages and opens a blocking Redis connection with
 * AUTH and SELECT done. The
 * client is a short-lived command, so it uses hiredis's synchronous API.
 */
#ifndef MXPROBE_CLIENT_CLI_H
#define MXPROBE_CLIENT_CLI_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "status.h"

/* Exit codes of every subcommand. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1     /* Redis failure, missing result, bad input */
#define CLI_EXIT_USAGE 2    /* invalid arguments */
#define CLI_EXIT_TIMEOUT 3  /* submit: some results did not come in time */

#define CLI_OPTIONS_MAX 16

/* One option of a subcommand: --name, and -c when short_name is set. */
struct cli_option {
    const char *name;
    char short_name;
    bool takes_value;
};

/*
 * A parsed command line. values[i] belongs to options[i]: its value, "" for
 * an option without value that was given, NULL when absent. The strings
 * point into argv; the arrays are owned (free with cli_args_fini()).
 */
struct cli_args {
    const char *values[CLI_OPTIONS_MAX];
    const char **positional;
    size_t n_positional;
    char **config_argv;     /* config_argv[0] is the subcommand name */
    int config_argc;
    bool help;              /* -h or --help was given */
};

/*
 * Splits argv (argv[0] is the subcommand name) by opts. Arguments of the
 * form --name or --name=value that are not in opts are kept for
 * config_load(), with the next argument as their value when they have no
 * '='. "-" is a positional argument and "--" ends the options. Returns
 * ST_OK, or ST_EINVAL with a message in err for a short option that is
 * unknown or an option that lacks its value.
 */
enum status cli_parse(const struct cli_option *opts, size_t n_opts, int argc,
                      char **argv, struct cli_args *out, char *err,
                      size_t errsize);

void cli_args_fini(struct cli_args *args);

/* Writes "mxprobe: " and the message with a newline to standard error. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Loads the settings from the environment and args->config_argv. Returns
 * ST_OK, or ST_ECONFIG after writing the error (then cfg needs no
 * config_free()).
 */
enum status cli_load_config(const struct cli_args *args, struct config *cfg);

/*
 * Connects to the Redis server of cfg->redis, authenticates and selects
 * the database, with timeout seconds for the connection and for each reply.
 * Returns the context (the caller frees it with redisFree()), or NULL after
 * writing an error that names the server and the setting to fix.
 */
redisContext *cli_redis_connect(const struct config *cfg, double timeout);

/*
 * Returns whether id can be used as a job id: 1 to JOB_ID_MAX bytes without
 * control characters (the fleet replaces any other id with the stream entry
 * id, and the result would never be found under it).
 */
bool cli_valid_id(const char *id);

#endif
