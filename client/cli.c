/* SPDX-License-Identifier: MIT */
/*
 * Argument splitting, error messages and the blocking Redis connection
 * shared by the mxprobe subcommands.
 */
#include "cli.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "codec.h"
#include "xalloc.h"

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("mxprobe: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const struct cli_option *
find_long(const struct cli_option *opts, size_t n_opts, const char *name,
          size_t len, size_t *index)
{
    for (size_t i = 0; i < n_opts; i++) {
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            *index = i;
            return &opts[i];
        }
    }
    return NULL;
}

static const struct cli_option *
find_short(const struct cli_option *opts, size_t n_opts, char c,
           size_t *index)
{
    for (size_t i = 0; i < n_opts; i++) {
        if (opts[i].short_name != '\0' && opts[i].short_name == c) {
            *index = i;
            return &opts[i];
        }
    }
    return NULL;
}

/* Keeps a setting flag (and its value) for config_load(). */
static int
keep_config_flag(struct cli_args *out, int argc, char **argv, int i)
{
    out->config_argv[out->config_argc++] = argv[i];
    if (strchr(argv[i], '=') == NULL && i + 1 < argc) {
        i++;
        out->config_argv[out->config_argc++] = argv[i];
    }
    return i;
}

/* Handles argv[i], a "--" argument; returns the last index it used. */
static int
parse_long(const struct cli_option *opts, size_t n_opts, int argc,
           char **argv, int i, struct cli_args *out, char *err,
           size_t errsize)
{
    const char *name = argv[i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct cli_option *opt;
    size_t index;

    if (strcmp(name, "help") == 0) {
        out->help = true;
        return i;
    }
    opt = find_long(opts, n_opts, name, len, &index);
    if (opt == NULL)
        return keep_config_flag(out, argc, argv, i);

    if (!opt->takes_value) {
        if (eq != NULL) {
            snprintf(err, errsize, "option --%s takes no value", opt->name);
            return -1;
        }
        out->values[index] = "";
        return i;
    }
    if (eq != NULL) {
        out->values[index] = eq + 1;
        return i;
    }
    if (i + 1 >= argc) {
        snprintf(err, errsize, "option --%s needs a value", opt->name);
        return -1;
    }
    out->values[index] = argv[i + 1];
    return i + 1;
}

/* Handles argv[i], a "-c" argument; returns the last index it used. */
static int
parse_short(const struct cli_option *opts, size_t n_opts, int argc,
            char **argv, int i, struct cli_args *out, char *err,
            size_t errsize)
{
    const struct cli_option *opt;
    size_t index;

    if (strcmp(argv[i], "-h") == 0) {
        out->help = true;
        return i;
    }
    opt = NULL;
    if (strlen(argv[i]) == 2)
        opt = find_short(opts, n_opts, argv[i][1], &index);
    if (opt == NULL) {
        snprintf(err, errsize, "unknown option \"%s\"", argv[i]);
        return -1;
    }
    if (!opt->takes_value) {
        out->values[index] = "";
        return i;
    }
    if (i + 1 >= argc) {
        snprintf(err, errsize, "option -%c needs a value", opt->short_name);
        return -1;
    }
    out->values[index] = argv[i + 1];
    return i + 1;
}

enum status
cli_parse(const struct cli_option *opts, size_t n_opts, int argc,
          char **argv, struct cli_args *out, char *err, size_t errsize)
{
    bool options_done = false;

    assert(n_opts <= CLI_OPTIONS_MAX);
    memset(out, 0, sizeof *out);
    out->positional = xcalloc((size_t)argc + 1, sizeof *out->positional);
    out->config_argv = xcalloc((size_t)argc + 1, sizeof *out->config_argv);
    out->config_argv[out->config_argc++] = argv[0];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            out->positional[out->n_positional++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (arg[1] == '-')
            i = parse_long(opts, n_opts, argc, argv, i, out, err, errsize);
        else
            i = parse_short(opts, n_opts, argc, argv, i, out, err, errsize);
        if (i < 0)
            return ST_EINVAL;
    }
    return ST_OK;
}

void
cli_args_fini(struct cli_args *args)
{
    free(args->positional);
    free(args->config_argv);
    args->positional = NULL;
    args->config_argv = NULL;
}

enum status
cli_load_config(const struct cli_args *args, struct config *cfg)
{
    char err[512];
    enum status st;

    err[0] = '\0';
    st = config_load(cfg, args->config_argc, args->config_argv, err,
                     sizeof err);
    if (st == ST_AGAIN) {
        /* cli_parse() removes -h and --help before config_load(). */
        config_free(cfg);
        return ST_ECONFIG;
    }
    if (st != ST_OK) {
        cli_error("%s", err);
        config_free(cfg);
        return ST_ECONFIG;
    }
    return ST_OK;
}

static struct timeval
seconds_to_timeval(double seconds)
{
    struct timeval tv;

    tv.tv_sec = (time_t)floor(seconds);
    tv.tv_usec = (suseconds_t)((seconds - floor(seconds)) * 1e6);
    return tv;
}

/* Runs one command that must reply with a status (+OK); writes the error
 * otherwise. */
static bool
run_setup_command(redisContext *c, const char *where, const char *what,
                  int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;

    if (r == NULL)
        cli_error("%s on Redis at %s failed: %s", what, where, c->errstr);
    else if (!ok)
        cli_error("%s on Redis at %s failed: %s; check MXPROBE_REDIS",
                  what, where, r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    return ok;
}

static bool
authenticate(redisContext *c, const struct redis_addr *addr,
             const char *where)
{
    const char *auth[] = {"AUTH", addr->password};
    char db[16];
    const char *select[] = {"SELECT", db};

    if (addr->password[0] != '\0' &&
        !run_setup_command(c, where, "authentication (AUTH)", 2, auth))
        return false;
    if (addr->db == 0)
        return true;
    if (snprintf(db, sizeof db, "%d", addr->db) >= (int)sizeof db)
        return false;
    return run_setup_command(c, where, "SELECT", 2, select);
}

redisContext *
cli_redis_connect(const struct config *cfg, double timeout)
{
    struct redis_addr addr;
    struct timeval tv = seconds_to_timeval(timeout);
    redisContext *c;
    char err[512];
    char where[300];

    err[0] = '\0';
    if (config_parse_redis(cfg->redis, &addr, err, sizeof err) != ST_OK) {
        cli_error("%s; set MXPROBE_REDIS or --redis to "
                  "redis://host:port or unix:/path", err);
        return NULL;
    }
    /* The password stays out of every message. */
    if (addr.path[0] != '\0') {
        snprintf(where, sizeof where, "unix:%s", addr.path);
        c = redisConnectUnixWithTimeout(addr.path, tv);
    } else {
        snprintf(where, sizeof where, "%s:%d", addr.host, addr.port);
        c = redisConnectWithTimeout(addr.host, addr.port, tv);
    }
    if (c == NULL || c->err) {
        cli_error("cannot connect to Redis at %s: %s; start the server or "
                  "set MXPROBE_REDIS (or --redis) to its address", where,
                  c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK || !authenticate(c, &addr, where)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

bool
cli_valid_id(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];

        if (ch < 0x20 || ch == 0x7F)
            return false;
    }
    return true;
}
