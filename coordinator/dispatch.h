/* SPDX-License-Identifier: MIT */
/*
 * The coordinator's writes: probe items for workers (XADD to the probes
 * stream and XACK of the jobs entries in one MULTI/EXEC, so a crash never
 * loses or duplicates a job), direct answers (syntax, dead domains) through
 * the results script, and dead letters for jobs delivered too often.
 */
#ifndef MXPROBE_DISPATCH_H
#define MXPROBE_DISPATCH_H

#include <stddef.h>

#include "codec.h"
#include "coordinator.h"
#include "facts.h"
#include "verdict.h"

/*
 * Sends one probe item with jobs[0..n) (at most PROBE_JOBS_MAX). Takes the
 * jobs: their strings belong to the write from now on, and the caller must
 * neither use nor free them. catchall_local (borrowed, may be NULL) asks the
 * worker to test the catch-all first. When the write fails the jobs stay
 * pending in the jobs stream and are read again.
 */
void dispatch_probe_take(struct coordinator *co, const char *domain,
                         const struct facts *facts, struct job *jobs,
                         size_t n, const char *catchall_local,
                         enum tristate catch_all);

/*
 * Answers jobs[0..n) with reason (and the status the contract pairs with
 * it), no SMTP evidence and no MX, acking their jobs entries. Takes the jobs
 * as dispatch_probe_take() does. detail (may be NULL) goes into the log line.
 */
void dispatch_answer_take(struct coordinator *co, struct job *jobs, size_t n,
                          enum verdict_reason reason, const char *detail);

/*
 * Answers one job that was delivered more than max_deliveries times with
 * unknown/temporary_failure, and copies it to the dead stream. Takes the job.
 */
void dispatch_dead_letter_take(struct coordinator *co, struct job *job,
                               long long deliveries);

#endif
