/* SPDX-License-Identifier: MIT */
/*
 * The "mxprobe result" subcommand: reads finished results by job id from
 * the result:<id> keys and prints them as JSON lines or CSV.
 */
#ifndef MXPROBE_CLIENT_RESULT_CMD_H
#define MXPROBE_CLIENT_RESULT_CMD_H

#include <stdio.h>

/*
 * Runs "mxprobe result [options] ID...": argv[0] is "result". Returns a
 * CLI_EXIT_* code: CLI_EXIT_FAIL when any id has no result (not finished
 * yet, or expired) or Redis fails, CLI_EXIT_USAGE for invalid arguments.
 */
int result_cmd_main(int argc, char **argv);

/* Writes the subcommand's help text to out. */
void result_cmd_usage(FILE *out);

#endif
