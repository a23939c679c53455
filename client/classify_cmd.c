/* SPDX-License-Identifier: MIT */
/*
 * "mxprobe classify": parses one reply from standard input with the same
 * parser and classifier the workers use, and prints one key=value line.
 * Input is read up to the size of the longest reply the parser accepts,
 * so a runaway pipe is rejected instead of buffered.
 */
#include "classify_cmd.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "cli.h"
#include "smtp_reply.h"
#include "xalloc.h"

/* The longest reply the parser accepts: every line at its maximum with
 * CRLF (RFC 5321 section 4.5.3.1.5). The buffer has two bytes more, one
 * to detect longer input and one for a missing final line end. */
#define CLASSIFY_INPUT_MAX (SMTP_REPLY_LINES_MAX * (SMTP_REPLY_LINE_MAX + 2))

enum classify_opt { CLASSIFY_OPT_STAGE, CLASSIFY_NOPTS };

static const struct cli_option classify_opts[] = {
    [CLASSIFY_OPT_STAGE] = {"stage", 's', true},
};

_Static_assert(sizeof classify_opts / sizeof classify_opts[0] == CLASSIFY_NOPTS,
               "classify_opts must list every option");

void
classify_cmd_usage(FILE *out)
{
    fputs("Usage: mxprobe classify [--stage STAGE] < REPLY\n"
          "\n"
          "Reads one SMTP reply (one line, or the lines of a multi-line\n"
          "reply such as 550-... 550 ...) from standard input and prints\n"
          "the status, reason, enhanced code (- when none), category and\n"
          "the classification rule that decided, as key=value pairs.\n"
          "\n"
          "Options:\n"
          "  -s, --stage STAGE  the command the reply answered: greeting,\n"
          "                     ehlo, mail or rcpt (default rcpt)\n"
          "\n"
          "Exit status: 0 when the reply was classified, 2 for invalid\n"
          "arguments or input that is not one SMTP reply.\n",
          out);
}

/*
 * Reads standard input into buf (size bytes). Returns the length, or -1
 * after writing an error when the input is longer or cannot be read. A
 * missing final line end is added (echo -n, here-strings), so buf has room
 * for one more byte than it reads.
 */
static long
read_input(char *buf, size_t size)
{
    size_t len = fread(buf, 1, size, stdin);

    if (ferror(stdin)) {
        cli_error("cannot read standard input");
        return -1;
    }
    if (len >= size - 1) {
        cli_error("input is longer than %zu bytes, the longest SMTP reply "
                  "accepted; give one reply",
                  size - 2);
        return -1;
    }
    if (len > 0 && buf[len - 1] != '\n')
        buf[len++] = '\n';
    return (long)len;
}

/* Returns whether data contains only spaces and line ends. */
static bool
is_blank(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (strchr(" \t\r\n", data[i]) == NULL)
            return false;
    }
    return true;
}

/*
 * Parses exactly one reply from data. Returns false after writing an error
 * when data contains no complete reply, an invalid one, or more than one.
 */
static bool
parse_input(const char *data, size_t len, struct smtp_reply *reply)
{
    struct smtp_reply_parser parser;
    size_t consumed = 0;
    enum status st;

    smtp_reply_parser_init(&parser);
    st = smtp_reply_feed(&parser, data, len, &consumed, reply);
    if (st == ST_AGAIN) {
        cli_error("input ends before the reply does: the last line of a "
                  "reply has a space after its code (550 ...), not a "
                  "dash (550-...)");
        return false;
    }
    if (st != ST_OK) {
        cli_error("input is not an SMTP reply: each line needs a three-"
                  "digit code (the same on every line) followed by a space "
                  "or a dash, and at most %d octets",
                  SMTP_REPLY_LINE_MAX);
        return false;
    }
    if (consumed < len && !is_blank(data + consumed, len - consumed)) {
        cli_error("input contains more than one reply; pass one reply");
        return false;
    }
    return true;
}

static void
print_classification(enum smtp_stage stage, const struct smtp_reply *reply,
                     const struct classification *c)
{
    printf("status=%s reason=%s enhanced=%s category=%s rule=%s code=%d "
           "retry=%s stage=%s\n",
           verdict_status_str(c->status), verdict_reason_str(c->reason),
           reply->enhanced[0] != '\0' ? reply->enhanced : "-",
           reply_category_str(c->category), c->rule, reply->code,
           c->retry ? "yes" : "no", smtp_stage_str(stage));
}

/* Checks the options; settings such as --redis are accepted and ignored
 * after validation, because main() passes them to every subcommand. */
static bool
check_args(const struct cli_args *args, enum smtp_stage *stage)
{
    const char *name = args->values[CLASSIFY_OPT_STAGE];
    struct config cfg;

    if (args->n_positional > 0) {
        cli_error("unexpected argument \"%s\": the reply is read from "
                  "standard input",
                  args->positional[0]);
        return false;
    }
    *stage = SMTP_STAGE_RCPT;
    if (name != NULL &&
        (!smtp_stage_parse(name, stage) || *stage == SMTP_STAGE_CONNECT)) {
        cli_error("invalid --stage \"%s\": use greeting, ehlo, mail or "
                  "rcpt",
                  name);
        return false;
    }
    if (cli_load_config(args, &cfg) != ST_OK)
        return false;
    config_free(&cfg);
    return true;
}

static int
run(enum smtp_stage stage)
{
    char *input = xmalloc(CLASSIFY_INPUT_MAX + 2);
    struct smtp_reply reply;
    struct classification c;
    long len = read_input(input, CLASSIFY_INPUT_MAX + 2);
    int rc = CLI_EXIT_USAGE;

    if (len >= 0 && parse_input(input, (size_t)len, &reply)) {
        classify_reply(stage, &reply, &c);
        print_classification(stage, &reply, &c);
        rc = CLI_EXIT_OK;
    }
    free(input);
    return rc;
}

int
classify_cmd_main(int argc, char **argv)
{
    struct cli_args args;
    enum smtp_stage stage;
    char err[256];
    int rc = CLI_EXIT_USAGE;

    if (cli_parse(classify_opts, CLASSIFY_NOPTS, argc, argv, &args, err,
                  sizeof err) != ST_OK) {
        cli_error("%s; see mxprobe help classify", err);
        goto out_fini;
    }
    if (args.help) {
        classify_cmd_usage(stdout);
        rc = CLI_EXIT_OK;
        goto out_fini;
    }
    if (check_args(&args, &stage))
        rc = run(stage);

out_fini:
    cli_args_fini(&args);
    return rc;
}
