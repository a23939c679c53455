/* SPDX-License-Identifier: MIT */
/*
 * The end of a slot's session: turns the session's outcomes into results
 * (or, for temporary answers with retries left, into a new probe item for
 * the delayed set), writes them with the probe entry's ack in one script,
 * and publishes a domain's catch-all decision. It probes nothing itself.
 */
#ifndef MXPROBE_VERDICTS_H
#define MXPROBE_VERDICTS_H

#include <stdint.h>

#include "worker_internal.h"

/*
 * Writes the results of sl's finished session and acks its probe entry in
 * the same script; jobs to retry go to the delayed set, and a catch-all
 * decision to the domain hash and the catch-all channel, there too. Moves sl
 * to SLOT_WRITING, then frees the slot once Redis answered, or retries the
 * write a few times (SLOT_RETRYING) before leaving the entry pending.
 */
void verdicts_write(struct slot *sl);

#endif
