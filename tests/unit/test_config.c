/* SPDX-License-Identifier: MIT */
/* Settings: defaults, environment, flags, bounds, Redis URLs, key names. */
#include <stdlib.h>

#include "check.h"
#include "config.h"
#include "keys.h"

static void
test_defaults_env_and_flags(void)
{
    struct config cfg;
    char err[256];
    char *argv[] = {"prog", "--sessions", "7", "--redis=unix:/tmp/r.sock",
                    "--rcpt-timeout", "0.5", NULL};

    setenv("MXPROBE_SESSIONS", "3", 1);
    setenv("MXPROBE_MX_RATE", "12", 1);
    setenv("MXPROBE_HELO_NAME", "probe.example.net", 1);
    CHECK_INT(config_load(&cfg, 6, argv, err, sizeof err), ST_OK);
    CHECK_INT(cfg.sessions, 7); /* the flag wins over the variable */
    CHECK_INT(cfg.mx_rate, 12);
    CHECK_INT(cfg.smtp_port, 25);
    CHECK_STR(cfg.redis, "unix:/tmp/r.sock");
    CHECK_STR(cfg.prefix, "mxprobe:");
    CHECK_STR(cfg.sender, "postmaster@probe.example.net");
    CHECK(cfg.rcpt_timeout > 0.49 && cfg.rcpt_timeout < 0.51);
    CHECK_INT(cfg.n_retry_delays, 4);
    CHECK_INT(cfg.retry_delays[0], 300);
    CHECK(cfg.worker_id[0] != '\0');
    config_free(&cfg);
    unsetenv("MXPROBE_SESSIONS");
    unsetenv("MXPROBE_MX_RATE");
    unsetenv("MXPROBE_HELO_NAME");
}

static void
test_rejects_bad_values(void)
{
    struct config cfg;
    char err[256];
    char *bad_port[] = {"prog", "--smtp-port", "70000", NULL};
    char *bad_flag[] = {"prog", "--no-such-thing", "1", NULL};
    char *missing[] = {"prog", "--sessions", NULL};
    char *help[] = {"prog", "--help", NULL};
    char *retry[] = {"prog", "--retry-schedule", "60,30", NULL};

    CHECK_INT(config_load(&cfg, 3, bad_port, err, sizeof err), ST_ECONFIG);
    CHECK(strstr(err, "smtp-port") != NULL);
    config_free(&cfg);
    CHECK_INT(config_load(&cfg, 3, bad_flag, err, sizeof err), ST_ECONFIG);
    CHECK(strstr(err, "--no-such-thing") != NULL);
    config_free(&cfg);
    CHECK_INT(config_load(&cfg, 2, missing, err, sizeof err), ST_ECONFIG);
    config_free(&cfg);
    CHECK_INT(config_load(&cfg, 2, help, err, sizeof err), ST_AGAIN);
    config_free(&cfg);
    CHECK_INT(config_load(&cfg, 3, retry, err, sizeof err), ST_ECONFIG);
    CHECK(strstr(err, "retry-schedule") != NULL);
    config_free(&cfg);

    setenv("MXPROBE_SESSIONS", "1e3", 1);
    CHECK_INT(config_load(&cfg, 1, help, err, sizeof err), ST_ECONFIG);
    config_free(&cfg);
    setenv("MXPROBE_SESSIONS", " 25", 1);
    CHECK_INT(config_load(&cfg, 1, help, err, sizeof err), ST_ECONFIG);
    config_free(&cfg);
    setenv("MXPROBE_SESSIONS", "many", 1);
    CHECK_INT(config_load(&cfg, 1, help, err, sizeof err), ST_ECONFIG);
    CHECK(strstr(err, "many") != NULL);
    config_free(&cfg);
    unsetenv("MXPROBE_SESSIONS");
}

static void
test_redis_urls(void)
{
    struct redis_addr a;
    char err[256];

    CHECK_INT(config_parse_redis("redis://127.0.0.1:6390/2", &a, err,
                                 sizeof err), ST_OK);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK_INT(a.port, 6390);
    CHECK_INT(a.db, 2);
    CHECK_INT(config_parse_redis("redis://:s3cret@redis", &a, err, sizeof err),
              ST_OK);
    CHECK_STR(a.host, "redis");
    CHECK_STR(a.password, "s3cret");
    CHECK_INT(a.port, 6379);
    CHECK_INT(config_parse_redis("redis://[::1]:7000", &a, err, sizeof err),
              ST_OK);
    CHECK_STR(a.host, "::1");
    CHECK_INT(a.port, 7000);
    CHECK_INT(config_parse_redis("unix:/run/redis.sock", &a, err, sizeof err),
              ST_OK);
    CHECK_STR(a.path, "/run/redis.sock");
    CHECK_INT(config_parse_redis("http://x", &a, err, sizeof err),
              ST_ECONFIG);
    CHECK_INT(config_parse_redis("redis://h:99999", &a, err, sizeof err),
              ST_ECONFIG);
    CHECK_INT(config_parse_redis("redis://:6379", &a, err, sizeof err),
              ST_ECONFIG);
}

static void
test_key_names(void)
{
    struct keys k;
    char buf[KEYS_NAME_MAX];

    keys_init(&k, "mxprobe:");
    CHECK_STR(keys_name(&k, KEY_JOBS, NULL, buf, sizeof buf), "mxprobe:jobs");
    CHECK_STR(keys_name(&k, KEY_RESULT, "order-42", buf, sizeof buf),
              "mxprobe:result:order-42");
    CHECK_STR(keys_name(&k, KEY_DOMAIN, "example.org", buf, sizeof buf),
              "mxprobe:domain:example.org");
    CHECK_STR(keys_name(&k, KEY_MX_INFLIGHT, "mx1.test", buf, sizeof buf),
              "mxprobe:mx:mx1.test:inflight");
    CHECK_STR(keys_name(&k, KEY_CATCHALL, "ignored", buf, sizeof buf),
              "mxprobe:catchall");
    keys_init(&k, "t1:");
    CHECK_STR(keys_name(&k, KEY_BATCH, "b", buf, sizeof buf), "t1:batch:b");
}

int
main(void)
{
    test_defaults_env_and_flags();
    test_rejects_bad_values();
    test_redis_urls();
    test_key_names();
    return check_exit("test_config");
}
