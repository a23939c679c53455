/* SPDX-License-Identifier: MIT */
/*
 * Turning entries of the jobs stream into jobs: field checks, the job id
 * rule, the syntax check, and the routing that follows (a direct syntax
 * answer, a dead letter, or the job's domain). Entries already held in
 * memory are skipped, so reading the pending list again is harmless.
 */
#ifndef MXPROBE_INTAKE_H
#define MXPROBE_INTAKE_H

#include <hiredis/hiredis.h>

#include "coordinator.h"

/*
 * Takes one entry, a reply of the form [id, [field, value, ...]] (borrowed).
 * dead_deliveries > 0 means the entry was delivered too often: it is
 * answered with temporary_failure and copied to the dead stream.
 */
void intake_entry(struct coordinator *co, const redisReply *entry,
                  long long dead_deliveries);

/* Takes every entry of an array of entries. */
void intake_entries(struct coordinator *co, const redisReply *entries);

#endif
