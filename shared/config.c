/* SPDX-License-Identifier: MIT */
/*
 * The settings table and its loader. Each row names a flag, its environment
 * variable, the field it fills, its default and its help text; loading
 * applies defaults, then the environment, then the command line, checking
 * every value against the row's bounds.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

enum config_type {
    CONFIG_STRING,
    CONFIG_INT,
    CONFIG_SECONDS,
};

struct config_row {
    const char *flag;      /* "redis" for --redis and MXPROBE_REDIS */
    enum config_type type;
    size_t offset;
    const char *def;
    double min;            /* bounds for numbers */
    double max;
    const char *help;
};

#define ROW_STR(name, field, def, help) \
    {name, CONFIG_STRING, offsetof(struct config, field), def, 0, 0, help}
#define ROW_INT(name, field, def, min, max, help) \
    {name, CONFIG_INT, offsetof(struct config, field), def, min, max, help}
#define ROW_SEC(name, field, def, min, max, help) \
    {name, CONFIG_SECONDS, offsetof(struct config, field), def, min, max, help}

static const struct config_row config_rows[] = {
    ROW_STR("redis", redis, "redis://127.0.0.1:6379",
            "Redis server: redis://[:password@]host[:port][/db] or "
            "unix:/path/to/socket"),
    ROW_STR("prefix", prefix, "mxprobe:", "prefix of every Redis key"),
    ROW_STR("dns", dns, "",
            "DNS servers as ip[:port],... (empty: those of "
            "/etc/resolv.conf)"),
    ROW_STR("helo-name", helo_name, "",
            "name sent in EHLO/HELO; needs matching reverse DNS in "
            "production (empty: the host name)"),
    ROW_STR("sender", sender, "",
            "MAIL FROM address used when a server rejects the null sender "
            "(empty: postmaster@ the HELO name)"),
    ROW_STR("source-addrs", source_addrs, "",
            "local addresses to bind outgoing SMTP connections to, "
            "comma-separated, used in turn (empty: the kernel chooses)"),
    ROW_INT("smtp-port", smtp_port, "25", 1, 65535,
            "TCP port of the MX hosts; other values than 25 are for tests"),
    ROW_INT("sessions", sessions, "100", 1, 100000,
            "SMTP sessions in flight per worker"),
    ROW_INT("batch-size", batch_size, "20", 1, 1000,
            "addresses of one domain checked in one SMTP session"),
    ROW_INT("mx-concurrency", mx_concurrency, "3", 1, 10000,
            "SMTP sessions open at once to one MX host, across the fleet"),
    ROW_INT("mx-rate", mx_rate, "30", 1, 1000000,
            "new SMTP sessions per minute to one MX host, across the fleet"),
    ROW_SEC("connect-timeout", connect_timeout, "20", 0.01, 3600,
            "seconds to wait for a TCP connection"),
    ROW_SEC("greeting-timeout", greeting_timeout, "120", 0.01, 3600,
            "seconds to wait for the 220 greeting (tarpits delay it)"),
    ROW_SEC("ehlo-timeout", ehlo_timeout, "60", 0.01, 3600,
            "seconds to wait for the EHLO or HELO reply"),
    ROW_SEC("mail-timeout", mail_timeout, "60", 0.01, 3600,
            "seconds to wait for the MAIL FROM reply"),
    ROW_SEC("rcpt-timeout", rcpt_timeout, "60", 0.01, 3600,
            "seconds to wait for each RCPT TO reply"),
    ROW_SEC("quit-timeout", quit_timeout, "10", 0.01, 3600,
            "seconds to wait for the QUIT reply"),
    ROW_SEC("dns-timeout", dns_timeout, "3", 0.01, 60,
            "seconds for one DNS try"),
    ROW_INT("dns-tries", dns_tries, "3", 1, 10, "DNS tries per lookup"),
    ROW_INT("domain-ttl", domain_ttl, "3600", 1, 30 * 86400,
            "seconds domain facts stay cached in Redis"),
    ROW_INT("result-ttl", result_ttl, "604800", 1, 365 * 86400,
            "seconds a result key stays in Redis"),
    ROW_SEC("claim-idle", claim_idle, "300", 0.1, 86400,
            "seconds a pending job or probe may stay idle before another "
            "process takes it over"),
    ROW_INT("max-deliveries", max_deliveries, "5", 1, 1000,
            "deliveries of one job before it is answered as failed and "
            "dead-lettered"),
    ROW_STR("retry-schedule", retry_schedule, "300,900,1800,3600",
            "retries after a temporary failure such as greylisting, as "
            "seconds after the first attempt, comma-separated"),
    ROW_SEC("catchall-wait", catchall_wait, "600", 0.1, 86400,
            "seconds jobs of a domain wait for its catch-all check before "
            "going out without the flag"),
    ROW_STR("log-level", log_level, "info",
            "lowest level logged: crit, error, warn, info or debug"),
    ROW_STR("worker-id", worker_id, "",
            "id of this process in logs, results and consumer groups "
            "(empty: host name and process id)"),
};

#define CONFIG_NROWS (sizeof config_rows / sizeof config_rows[0])

static void
config_env_name(const struct config_row *row, char *out, size_t size)
{
    size_t o = 0;
    const char *p;

    o = (size_t)snprintf(out, size, "MXPROBE_");
    for (p = row->flag; *p != '\0' && o + 1 < size; p++)
        out[o++] = *p == '-' ? '_' : (char)(*p - ('a' <= *p && *p <= 'z'
                                                      ? 'a' - 'A'
                                                      : 0));
    out[o] = '\0';
}

/* name is how the user gave the value ("MXPROBE_SMTP_PORT",
 * "--smtp-port"), so an error message points at the line to fix. */
static enum status
config_set(struct config *cfg, const struct config_row *row, const char *value,
           const char *name, char *err, size_t errsize)
{
    char *field = (char *)cfg + row->offset;
    char *end = NULL;
    double number;

    if (row->type == CONFIG_STRING) {
        free(*(char **)(void *)field);
        *(char **)(void *)field = xstrdup(value);
        return ST_OK;
    }
    errno = 0;
    number = strtod(value, &end);
    /* strtod also takes leading spaces, hex and exponents; whole numbers
     * are plain digits only, so "1e3" or " 25" is rejected, not guessed. */
    bool plain_digits = strspn(value, "0123456789") == strlen(value);

    if (errno != 0 || end == value || *end != '\0' || !isfinite(number) ||
        (row->type == CONFIG_INT && !plain_digits) || value[0] == ' ' ||
        number < row->min || number > row->max ||
        (row->type == CONFIG_INT && number != floor(number))) {
        snprintf(err, errsize,
                 "invalid value for %s: \"%s\" (expected %s from %g to %g)",
                 name, value,
                 row->type == CONFIG_INT ? "a whole number"
                                         : "a number of seconds",
                 row->min, row->max);
        return ST_ECONFIG;
    }
    if (row->type == CONFIG_INT)
        *(int *)(void *)field = (int)number;
    else
        *(double *)(void *)field = number;
    return ST_OK;
}

static const struct config_row *
config_find(const char *flag, size_t len)
{
    for (size_t i = 0; i < CONFIG_NROWS; i++) {
        if (strlen(config_rows[i].flag) == len &&
            strncmp(config_rows[i].flag, flag, len) == 0)
            return &config_rows[i];
    }
    return NULL;
}

static enum status
config_parse_retry(struct config *cfg, char *err, size_t errsize)
{
    const char *p = cfg->retry_schedule;
    long previous = 0;

    cfg->n_retry_delays = 0;
    while (*p != '\0') {
        char *end = NULL;
        long value;

        errno = 0;
        value = strtol(p, &end, 10);
        if (errno != 0 || end == p || value <= previous || value > 7 * 86400 ||
            cfg->n_retry_delays == CONFIG_RETRY_MAX ||
            (*end != ',' && *end != '\0')) {
            snprintf(err, errsize,
                     "invalid value for retry-schedule "
                     "(MXPROBE_RETRY_SCHEDULE, --retry-schedule) "
                     "\"%s\": expected up to %d "
                     "increasing whole seconds, comma-separated, such as "
                     "300,900,3600",
                     cfg->retry_schedule, CONFIG_RETRY_MAX);
            return ST_ECONFIG;
        }
        cfg->retry_delays[cfg->n_retry_delays++] = (int)value;
        previous = value;
        p = *end == ',' ? end + 1 : end;
    }
    return ST_OK;
}

static enum status
config_load_env(struct config *cfg, char *err, size_t errsize)
{
    char env_name[64];

    for (size_t i = 0; i < CONFIG_NROWS; i++) {
        const char *value;

        config_env_name(&config_rows[i], env_name, sizeof env_name);
        value = getenv(env_name);
        if (value == NULL)
            continue;
        if (config_set(cfg, &config_rows[i], value, env_name, err,
                       errsize) != ST_OK)
            return ST_ECONFIG;
    }
    return ST_OK;
}

static enum status
config_load_args(struct config *cfg, int argc, char **argv, char *err,
                 size_t errsize)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq;
        const char *value;
        const struct config_row *row;
        char flag_name[64];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return ST_AGAIN;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errsize, "unexpected argument \"%s\"; settings "
                     "are flags such as --redis URL", arg);
            return ST_ECONFIG;
        }
        arg += 2;
        eq = strchr(arg, '=');
        row = config_find(arg, eq != NULL ? (size_t)(eq - arg) : strlen(arg));
        if (row == NULL) {
            snprintf(err, errsize, "unknown flag \"%s\"; --help lists the "
                     "settings", argv[i]);
            return ST_ECONFIG;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errsize, "flag --%s needs a value", row->flag);
            return ST_ECONFIG;
        }
        snprintf(flag_name, sizeof flag_name, "--%s", row->flag);
        if (config_set(cfg, row, value, flag_name, err, errsize) != ST_OK)
            return ST_ECONFIG;
    }
    return ST_OK;
}

static void
config_fill_identity(struct config *cfg)
{
    char host[256];

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    if (cfg->helo_name[0] == '\0') {
        free(cfg->helo_name);
        cfg->helo_name = xstrdup(host);
    }
    if (cfg->sender[0] == '\0') {
        size_t len = strlen(cfg->helo_name) + sizeof "postmaster@";

        free(cfg->sender);
        cfg->sender = xmalloc(len);
        snprintf(cfg->sender, len, "postmaster@%s", cfg->helo_name);
    }
    if (cfg->worker_id[0] == '\0') {
        char id[300];

        snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
        free(cfg->worker_id);
        cfg->worker_id = xstrdup(id);
    }
}

enum status
config_load(struct config *cfg, int argc, char **argv, char *err,
            size_t errsize)
{
    enum status st;

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CONFIG_NROWS; i++) {
        st = config_set(cfg, &config_rows[i], config_rows[i].def,
                        config_rows[i].flag, err, errsize);
        if (st != ST_OK)
            return st;
    }
    st = config_load_env(cfg, err, errsize);
    if (st != ST_OK)
        return st;
    st = config_load_args(cfg, argc, argv, err, errsize);
    if (st != ST_OK)
        return st;
    st = config_parse_retry(cfg, err, errsize);
    if (st != ST_OK)
        return st;
    config_fill_identity(cfg);
    return ST_OK;
}

void
config_free(struct config *cfg)
{
    for (size_t i = 0; i < CONFIG_NROWS; i++) {
        if (config_rows[i].type == CONFIG_STRING) {
            char **field =
                (char **)(void *)((char *)cfg + config_rows[i].offset);

            free(*field);
            *field = NULL;
        }
    }
}

void
config_usage(FILE *out)
{
    char env_name[64];

    fprintf(out, "Settings (a flag wins over its environment variable):\n");
    for (size_t i = 0; i < CONFIG_NROWS; i++) {
        config_env_name(&config_rows[i], env_name, sizeof env_name);
        fprintf(out, "  --%s, %s (default \"%s\")\n      %s\n",
                config_rows[i].flag, env_name, config_rows[i].def,
                config_rows[i].help);
    }
}

enum status
config_set_flag(struct config *cfg, const char *flag, const char *value,
                char *err, size_t errsize)
{
    const struct config_row *row = config_find(flag, strlen(flag));

    if (row == NULL)
        return ST_EINVAL;
    if (config_set(cfg, row, value, row->flag, err, errsize) != ST_OK)
        return ST_ECONFIG;
    if (row->offset == offsetof(struct config, retry_schedule))
        return config_parse_retry(cfg, err, errsize);
    return ST_OK;
}

/* The URL as an error message shows it: everything between the scheme and
 * the last '@' becomes "***", so a typo in the port does not copy the
 * password into a log. */
static const char *
redis_url_shown(const char *url, char *buf, size_t size)
{
    const char *at = strrchr(url, '@');
    const char *scheme_end = strstr(url, "://");
    int keep = 0;

    if (at == NULL)
        return url;
    if (scheme_end != NULL && scheme_end < at)
        keep = (int)(scheme_end - url) + 3;
    snprintf(buf, size, "%.*s***%s", keep, url, at);
    return buf;
}

static enum status
redis_url_fail(char *err, size_t errsize, const char *url, const char *why)
{
    char shown[300];

    snprintf(err, errsize,
             "invalid Redis address \"%s\": %s (expected "
             "redis://[:password@]host[:port][/db] or unix:/path)",
             redis_url_shown(url, shown, sizeof shown), why);
    return ST_ECONFIG;
}

static enum status
redis_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        return ST_ECONFIG;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return ST_OK;
}

static enum status
redis_parse_hostport(const char *p, struct redis_addr *out, const char *url,
                     char *err, size_t errsize)
{
    const char *host_end;
    const char *port_start = NULL;
    const char *slash = strchr(p, '/');
    const char *end = slash != NULL ? slash : p + strlen(p);

    /* [v6addr]:port or host:port */
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL)
            return redis_url_fail(err, errsize, url, "unclosed '['");
        if (redis_copy(out->host, sizeof out->host, p + 1,
                       (size_t)(host_end - p - 1)) != ST_OK)
            return redis_url_fail(err, errsize, url, "host too long");
        if (host_end + 1 < end && host_end[1] == ':')
            port_start = host_end + 2;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));

        host_end = colon != NULL ? colon : end;
        if (redis_copy(out->host, sizeof out->host, p,
                       (size_t)(host_end - p)) != ST_OK)
            return redis_url_fail(err, errsize, url, "host too long");
        if (colon != NULL)
            port_start = colon + 1;
    }
    if (out->host[0] == '\0')
        return redis_url_fail(err, errsize, url, "missing host");
    if (port_start != NULL) {
        char *num_end = NULL;
        long port = strtol(port_start, &num_end, 10);

        if (num_end == port_start || num_end != end || port < 1 ||
            port > 65535)
            return redis_url_fail(err, errsize, url, "invalid port");
        out->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0') {
        char *num_end = NULL;
        long db = strtol(slash + 1, &num_end, 10);

        if (*num_end != '\0' || db < 0 || db > INT_MAX)
            return redis_url_fail(err, errsize, url, "invalid database");
        out->db = (int)db;
    }
    return ST_OK;
}

enum status
config_parse_redis(const char *url, struct redis_addr *out, char *err,
                   size_t errsize)
{
    const char *p;
    const char *at;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "unix:", 5) == 0) {
        p = url + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0' ||
            redis_copy(out->path, sizeof out->path, p, strlen(p)) != ST_OK)
            return redis_url_fail(err, errsize, url, "invalid socket path");
        return ST_OK;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return redis_url_fail(err, errsize, url, "unknown scheme");
    p = url + 8;
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;

        if (redis_copy(out->password, sizeof out->password, pw,
                       (size_t)(at - pw)) != ST_OK)
            return redis_url_fail(err, errsize, url, "password too long");
        p = at + 1;
    }
    return redis_parse_hostport(p, out, url, err, errsize);
}
