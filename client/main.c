/* SPDX-License-Identifier: MIT */
/*
 * The mxprobe command: finds the subcommand and hands it the arguments.
 * Setting flags given before the subcommand (mxprobe --redis URL submit
 * FILE) are moved behind it, so each subcommand receives all of them. The
 * subcommands own everything else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify_cmd.h"
#include "cli.h"
#include "config.h"
#include "result_cmd.h"
#include "submit.h"
#include "xalloc.h"

typedef int subcommand_fn(int argc, char **argv);

struct subcommand {
    const char *name;
    subcommand_fn *run;
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"submit", submit_main,
     "send a file of addresses as one batch and print their results"},
    {"result", result_cmd_main, "print the stored result of job ids"},
    {"classify", classify_cmd_main,
     "show how the fleet classifies an SMTP reply"},
};

#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void
usage(FILE *out)
{
    fputs("Usage: mxprobe [settings] SUBCOMMAND [options] [arguments]\n"
          "\n"
          "Verifies email addresses through an mxprobe fleet: jobs go to\n"
          "Redis, and the fleet's coordinator and workers answer them.\n"
          "\n"
          "Subcommands:\n",
          out);
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name,
                subcommands[i].summary);
    fputs("  help       show help for a subcommand (mxprobe help submit) or\n"
          "             every setting (mxprobe help settings)\n"
          "\n"
          "The Redis server and key prefix come from MXPROBE_REDIS and\n"
          "MXPROBE_PREFIX, or --redis and --prefix (default\n"
          "redis://127.0.0.1:6379 and \"mxprobe:\").\n",
          out);
}

static const struct subcommand *
find_subcommand(const char *name)
{
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    }
    return NULL;
}

static int
run_help(const char *topic)
{
    if (topic == NULL) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(topic, "submit") == 0) {
        submit_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(topic, "result") == 0) {
        result_cmd_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(topic, "classify") == 0) {
        classify_cmd_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(topic, "settings") == 0) {
        config_usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_error("no help for \"%s\"; topics are submit, result, classify and "
              "settings", topic);
    return CLI_EXIT_USAGE;
}

/*
 * Returns the index of the subcommand name in argv, skipping setting flags
 * before it ("--name value" or "--name=value"), or argc when there is none.
 */
static int
find_subcommand_index(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--help") == 0)
            return i;
        if (strchr(arg, '=') == NULL)
            i++;
    }
    return argc;
}

int
main(int argc, char **argv)
{
    const struct subcommand *sub;
    char **subargv;
    int at = find_subcommand_index(argc, argv);
    int n = 0;
    int rc;

    if (at >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[at], "--help") == 0 || strcmp(argv[at], "-h") == 0 ||
        strcmp(argv[at], "help") == 0)
        return run_help(at + 1 < argc ? argv[at + 1] : NULL);

    sub = find_subcommand(argv[at]);
    if (sub == NULL) {
        cli_error("unknown subcommand \"%s\"; run mxprobe --help for the "
                  "list", argv[at]);
        return CLI_EXIT_USAGE;
    }

    /* argv for the subcommand: its name, the settings given before it,
     * then its own arguments. */
    subargv = xcalloc((size_t)argc + 1, sizeof *subargv);
    subargv[n++] = argv[at];
    for (int i = 1; i < at; i++)
        subargv[n++] = argv[i];
    for (int i = at + 1; i < argc; i++)
        subargv[n++] = argv[i];
    rc = sub->run(n, subargv);
    free(subargv);
    return rc;
}
