/* SPDX-License-Identifier: MIT */
/*
 * Settings of both programs. Every setting is an environment variable and a
 * command-line flag of the same name (MXPROBE_REDIS and --redis); a flag wins
 * over the variable, and the variable over the default. One table in
 * config.c lists them all with their defaults, units and help text.
 */
#ifndef MXPROBE_CONFIG_H
#define MXPROBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "status.h"

#define CONFIG_RETRY_MAX 16

struct config {
    char *redis;          /* Redis URL or unix:/path, see config.c */
    char *prefix;         /* key prefix, "mxprobe:" */
    char *dns;            /* "ip[:port],..." or "" for the system's servers */
    char *helo_name;      /* EHLO name; "" means the host name */
    char *sender;         /* MAIL FROM when the null sender is refused */
    char *source_addrs;   /* local addresses to bind, comma-separated, or "" */
    int smtp_port;        /* 25; other values only for tests */
    int sessions;         /* SMTP sessions in flight per worker */
    int batch_size;       /* addresses of one domain per probe item */
    int mx_concurrency;   /* sessions per MX host across the fleet */
    int mx_rate;          /* new sessions per MX host per minute, fleet-wide */
    double connect_timeout;  /* seconds, each stage below likewise */
    double greeting_timeout;
    double ehlo_timeout;
    double mail_timeout;
    double rcpt_timeout;
    double quit_timeout;
    double dns_timeout;      /* seconds per DNS try */
    int dns_tries;
    int domain_ttl;          /* seconds a domain hash lives */
    int result_ttl;          /* seconds a result key lives */
    double claim_idle;       /* seconds before pending work is taken over */
    int max_deliveries;      /* deliveries before a job is dead-lettered */
    char *retry_schedule;    /* seconds after the first attempt, "a,b,c" */
    double catchall_wait;    /* seconds jobs wait for a domain's catch-all */
    char *log_level;
    char *worker_id;         /* "" means host name and process id */

    /* Derived by config_load(), not settings of their own. */
    int retry_delays[CONFIG_RETRY_MAX];
    size_t n_retry_delays;
};

/*
 * Fills cfg from defaults, the environment and argv (flags --name=value or
 * --name value). Returns ST_OK; ST_ECONFIG with a message in err for an
 * unknown flag or an invalid value; ST_AGAIN when --help was given (the
 * caller prints config_usage() and exits 0). Strings in cfg are owned by cfg.
 */
enum status config_load(struct config *cfg, int argc, char **argv,
                        char *err, size_t errsize);

void config_free(struct config *cfg);

/*
 * Sets one setting by its flag name without the dashes ("redis"), for
 * programs that parse their own command line. Returns ST_EINVAL when flag is
 * not a setting, ST_ECONFIG with a message in err when value is invalid.
 */
enum status config_set_flag(struct config *cfg, const char *flag,
                            const char *value, char *err, size_t errsize);

/* Prints one line per setting: flag, variable, default, help. */
void config_usage(FILE *out);

/* The parts of MXPROBE_REDIS. */
struct redis_addr {
    char host[256];   /* empty when path is set */
    int port;
    char path[256];   /* unix socket path, or empty */
    char password[256];
    int db;
};

/* Parses a Redis URL (see struct config). Returns ST_ECONFIG when invalid. */
enum status config_parse_redis(const char *url, struct redis_addr *out,
                               char *err, size_t errsize);

#endif
