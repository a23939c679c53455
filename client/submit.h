/* SPDX-License-Identifier: MIT */
/*
 * The "mxprobe submit" subcommand: sends a list of addresses to the fleet
 * as one batch, waits for their results on the batch's reply list and
 * prints them in input order.
 */
#ifndef MXPROBE_CLIENT_SUBMIT_H
#define MXPROBE_CLIENT_SUBMIT_H

#include <stdio.h>

/*
 * Runs "mxprobe submit [options] FILE": argv[0] is "submit". Returns a
 * CLI_EXIT_* code: CLI_EXIT_TIMEOUT when some results did not come before
 * --timeout (or the wait was interrupted), CLI_EXIT_FAIL for Redis or
 * input failures, CLI_EXIT_USAGE for invalid arguments.
 */
int submit_main(int argc, char **argv);

/* Writes the subcommand's help text to out. */
void submit_usage(FILE *out);

#endif
