/* SPDX-License-Identifier: MIT */
/*
 * The worker's event loop side: it reads probe items from the probes stream
 * while it has free session slots, takes over items left idle by dead
 * workers, keeps the claims of its own running items fresh, asks the
 * fleet-wide per-MX limiter before each session, runs one SMTP session per
 * item and writes the results (acknowledging the item in the same step).
 * It keeps nothing that matters between items: a killed worker's items are
 * finished by another one.
 */
#ifndef MXPROBE_WORKER_H
#define MXPROBE_WORKER_H

#include <ev.h>

#include "config.h"
#include "status.h"

struct worker;

/*
 * Creates the worker and starts connecting to Redis on loop. cfg, id and
 * helo_name are borrowed and must outlive the worker. Returns NULL with a
 * message in err when a setting is unusable (ST_ECONFIG cases such as an
 * invalid Redis URL or source address).
 */
struct worker *worker_new(struct ev_loop *loop, const struct config *cfg,
                          const char *id, const char *helo_name, char *err,
                          size_t errsize);

/*
 * Stops taking new items. Sessions in flight run to their end and write
 * their results; then the loop is broken. Items not started yet stay
 * pending in Redis for another worker.
 */
void worker_stop(struct worker *w);

/* Frees the worker; pending Redis callbacks fire with NULL first. */
void worker_free(struct worker *w);

#endif
