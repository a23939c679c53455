/* SPDX-License-Identifier: MIT */
/*
 * mxprobe-coordinator: reads the settings, sets up logging and signals, and
 * runs the coordinator's loop until SIGTERM or SIGINT. Nothing else lives
 * here.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "coordinator.h"
#include "log.h"

int
main(int argc, char **argv)
{
    struct config cfg;
    struct coordinator co;
    struct sigaction sa;
    enum log_level level = LOG_LVL_INFO;
    char err[512];
    enum status st;

    st = config_load(&cfg, argc, argv, err, sizeof err);
    if (st == ST_AGAIN) {
        printf("usage: mxprobe-coordinator [--setting=value ...]\n");
        config_usage(stdout);
        config_free(&cfg);
        return 0;
    }
    if (st != ST_OK) {
        fprintf(stderr, "mxprobe-coordinator: %s (see --help)\n", err);
        config_free(&cfg);
        return 2;
    }
    if (!log_level_parse(cfg.log_level, &level)) {
        fprintf(stderr,
                "mxprobe-coordinator: invalid value for log-level "
                "(MXPROBE_LOG_LEVEL, --log-level) \"%s\": expected "
                "crit, error, warn, info or debug\n",
                cfg.log_level);
        config_free(&cfg);
        return 2;
    }
    log_setup("coordinator", NULL, level);

    /* A Redis peer that goes away must not kill us on the next write. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (coordinator_init(&co, EV_DEFAULT, &cfg, err, sizeof err) != ST_OK) {
        char q[LOG_QUOTE_MAX];

        log_error(NULL, "ev=start_failed st=econfig detail=%s",
                  log_quote(q, sizeof q, err));
        config_free(&cfg);
        return 2;
    }
    ev_run(EV_DEFAULT, 0);
    coordinator_fini(&co);
    config_free(&cfg);
    return 0;
}
