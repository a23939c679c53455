/* SPDX-License-Identifier: MIT */
/*
 * The "mxprobe classify" subcommand: reads one SMTP reply from standard
 * input and prints how the fleet classifies it, with the table rule that
 * decided. It needs no Redis server and no fleet.
 */
#ifndef MXPROBE_CLIENT_CLASSIFY_CMD_H
#define MXPROBE_CLIENT_CLASSIFY_CMD_H

#include <stdio.h>

/*
 * Runs "mxprobe classify [--stage STAGE]": argv[0] is "classify". Returns
 * CLI_EXIT_OK after printing the classification, CLI_EXIT_USAGE for invalid
 * arguments or input that is not one SMTP reply.
 */
int classify_cmd_main(int argc, char **argv);

/* Writes the subcommand's help text to out. */
void classify_cmd_usage(FILE *out);

#endif
