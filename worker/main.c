/* SPDX-License-Identifier: MIT */
/*
 * mxprobe-worker: reads the settings, sets up logging and signals, and runs
 * the worker's loop. The first SIGTERM or SIGINT lets running sessions end
 * and write their results; a second one stops at once. Nothing else lives
 * here.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "worker.h"

static void
on_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    log_info(NULL, "ev=signal signal=%d", sig->signum);
    worker_stop(sig->data);
}

/* Refuses settings that would put a line break into an SMTP command. */
static bool
smtp_setting_ok(const char *name, const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>') {
            fprintf(stderr,
                    "mxprobe-worker: invalid %s \"%s\": spaces, "
                    "angle brackets and control characters are not "
                    "allowed\n",
                    name, value);
            return false;
        }
    }
    return true;
}

static int
run(struct config *cfg)
{
    struct ev_loop *loop = EV_DEFAULT;
    struct worker *w;
    ev_signal sigterm;
    ev_signal sigint;
    char err[512];

    w = worker_new(loop, cfg, cfg->worker_id, cfg->helo_name, err, sizeof err);
    if (w == NULL) {
        fprintf(stderr, "mxprobe-worker: %s\n", err);
        return 2;
    }
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    sigterm.data = w;
    ev_signal_start(loop, &sigterm);
    ev_signal_init(&sigint, on_signal, SIGINT);
    sigint.data = w;
    ev_signal_start(loop, &sigint);

    ev_run(loop, 0);

    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    worker_free(w);
    log_info(NULL, "ev=exit");
    return 0;
}

int
main(int argc, char **argv)
{
    struct config cfg;
    struct sigaction sa;
    enum log_level level = LOG_LVL_INFO;
    char err[512];
    enum status st;
    int rc;

    st = config_load(&cfg, argc, argv, err, sizeof err);
    if (st == ST_AGAIN) {
        printf("usage: mxprobe-worker [--setting=value ...]\n");
        config_usage(stdout);
        config_free(&cfg);
        return 0;
    }
    if (st != ST_OK) {
        fprintf(stderr, "mxprobe-worker: %s (see --help)\n", err);
        config_free(&cfg);
        return 2;
    }
    if (!log_level_parse(cfg.log_level, &level)) {
        fprintf(stderr,
                "mxprobe-worker: invalid value for log-level "
                "(MXPROBE_LOG_LEVEL, --log-level) \"%s\": expected "
                "crit, error, warn, info or debug\n",
                cfg.log_level);
        config_free(&cfg);
        return 2;
    }
    if (!smtp_setting_ok("helo_name", cfg.helo_name) ||
        !smtp_setting_ok("sender", cfg.sender)) {
        config_free(&cfg);
        return 2;
    }
    log_setup("worker", cfg.worker_id, level);

    /* A peer that goes away must not kill us on the next write. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    rc = run(&cfg);
    config_free(&cfg);
    return rc;
}
