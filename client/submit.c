/* SPDX-License-Identifier: MIT */
/*
 * "mxprobe submit" reads the address list, registers the batch (HSETNX
 * total) and adds one job per address to the jobs stream in pipelined
 * chunks. Then it takes results off the batch's reply list until every
 * address has one or the deadline passes, and prints them in input order.
 * Results are matched to lines by their job id, "<batch>:<line number>",
 * and anything else on the list is counted and ignored.
 */
#include "submit.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "codec.h"
#include "input.h"
#include "keys.h"
#include "output.h"
#include "verdict.h"
#include "xalloc.h"

/* XADDs sent in one pipeline round trip. */
#define SUBMIT_CHUNK 1000
/* Results taken off the reply list by one LRANGE + LTRIM. */
#define SUBMIT_DRAIN 1000
/* Leaves room in a job id for ':' and a line number (JOB_ID_MAX bytes). */
#define SUBMIT_BATCH_MAX 128
/* Seconds to connect and to wait for any one reply. */
#define SUBMIT_REDIS_TIMEOUT 30.0
/* Milliseconds one BLPOP blocks at most, so progress and the deadline are
 * checked in between. */
#define SUBMIT_POLL_MS 1000
/* The shortest BLPOP block; a timeout of 0 would block forever. */
#define SUBMIT_POLL_MIN_MS 10
/* Past the default retry schedule (its last retry comes an hour after the
 * first attempt), so a batch with a greylisting or unreachable domain still
 * gets every verdict. */
#define SUBMIT_DEFAULT_TIMEOUT 7200.0
#define SUBMIT_MAX_TIMEOUT (30.0 * 86400.0)
/* Milliseconds between two progress updates on a terminal. */
#define SUBMIT_PROGRESS_MS 100
/* Missing ids listed by name when the wait ends early. */
#define SUBMIT_MISSING_SHOWN 5

enum submit_opt {
    SUBMIT_OPT_BATCH,
    SUBMIT_OPT_TIMEOUT,
    SUBMIT_OPT_FORMAT,
    SUBMIT_OPT_OUTPUT,
    SUBMIT_OPT_NO_WAIT,
    SUBMIT_NOPTS
};

static const struct cli_option submit_opts[] = {
    [SUBMIT_OPT_BATCH] = {"batch", 'b', true},
    [SUBMIT_OPT_TIMEOUT] = {"timeout", 't', true},
    [SUBMIT_OPT_FORMAT] = {"format", 'f', true},
    [SUBMIT_OPT_OUTPUT] = {"output", 'o', true},
    [SUBMIT_OPT_NO_WAIT] = {"no-wait", '\0', false},
};

_Static_assert(sizeof submit_opts / sizeof submit_opts[0] == SUBMIT_NOPTS,
               "submit_opts must list every option");

/*
 * Set by the SIGINT and SIGTERM handler, so the wait stops and the results
 * already taken off the list are still printed. A signal handler can only
 * reach file-scope state, which is why this one flag is not in struct
 * submit.
 */
static volatile sig_atomic_t submit_interrupted;

struct submit {
    const char *path;          /* input file, "-" for standard input */
    const char *output_path;   /* NULL for standard output */
    double timeout;            /* seconds */
    enum output_format format;
    bool no_wait;

    struct config cfg;
    struct keys keys;
    redisContext *c;
    char batch[SUBMIT_BATCH_MAX + 1];
    char jobs_key[KEYS_NAME_MAX];
    char batch_key[KEYS_NAME_MAX];
    char reply_key[KEYS_NAME_MAX];

    struct input in;
    struct result *results;    /* results[i] is for in.lines[i] */
    bool *have;                /* whether results[i] is set */
    size_t n_done;
    size_t counts[VS_NSTATUSES];
    size_t n_stray;            /* results of other jobs, or repeated ones */
    size_t n_bad;              /* list items that are not result maps */

    FILE *out;
    bool progress;             /* standard error is a terminal */
    bool progress_shown;
    int64_t progress_ms;
};

void
submit_usage(FILE *out)
{
    fputs("Usage: mxprobe submit [options] FILE\n"
          "\n"
          "Submits the addresses in FILE (\"-\" for standard input), one a\n"
          "line, as one batch, waits for their results and prints them in\n"
          "input order. Blank lines and lines starting with '#' are\n"
          "skipped; the job id of each address is BATCH:LINE, with LINE\n"
          "its line number in FILE.\n"
          "\n"
          "Options:\n"
          "  -b, --batch NAME     batch name (default: generated); 1 to 128\n"
          "                       letters, digits, '.', '_', ':' or '-'\n"
          "  -t, --timeout SECS   wait at most this many seconds for all\n"
          "                       results (default 7200)\n"
          "  -f, --format FORMAT  csv (header row and columns email, status,\n"
          "                       reason, address, catch_all, mx, smtp_code,\n"
          "                       smtp_enhanced, smtp_text, id; the default)\n"
          "                       or jsonl (one JSON result map a line)\n"
          "  -o, --output FILE    write results to FILE, not standard output\n"
          "  --no-wait            submit, print the batch name and exit; the\n"
          "                       results go to the list <prefix>reply:BATCH\n"
          "                       and stay readable with mxprobe result\n"
          "  --redis URL          Redis server (MXPROBE_REDIS)\n"
          "  --prefix PREFIX      key prefix (MXPROBE_PREFIX)\n"
          "\n"
          "Exit status: 0 when every address has a result, 3 when some were\n"
          "missing at the timeout or on interrupt (the others are printed),\n"
          "1 for Redis or input failures, 2 for invalid arguments.\n",
          out);
}

static bool
valid_batch(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > SUBMIT_BATCH_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == ':' || ch == '-';

        if (!ok)
            return false;
    }
    return true;
}

static bool
parse_timeout(const char *text, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) ||
        v <= 0 || v > SUBMIT_MAX_TIMEOUT)
        return false;
    *out = v;
    return true;
}

/* Fills s from the options; returns false after writing the error. */
static bool
take_options(struct submit *s, const struct cli_args *args)
{
    const char *const *v = args->values;

    if (args->n_positional != 1) {
        cli_error("submit needs exactly one FILE (\"-\" for standard "
                  "input), got %zu; see mxprobe help submit",
                  args->n_positional);
        return false;
    }
    s->path = args->positional[0];
    s->output_path = v[SUBMIT_OPT_OUTPUT];
    s->no_wait = v[SUBMIT_OPT_NO_WAIT] != NULL;
    s->timeout = SUBMIT_DEFAULT_TIMEOUT;
    s->format = OUTPUT_CSV;

    if (v[SUBMIT_OPT_TIMEOUT] != NULL &&
        !parse_timeout(v[SUBMIT_OPT_TIMEOUT], &s->timeout)) {
        cli_error("invalid --timeout \"%s\"; give seconds above 0 and up "
                  "to %.0f", v[SUBMIT_OPT_TIMEOUT], SUBMIT_MAX_TIMEOUT);
        return false;
    }
    if (v[SUBMIT_OPT_FORMAT] != NULL &&
        !output_format_parse(v[SUBMIT_OPT_FORMAT], &s->format)) {
        cli_error("invalid --format \"%s\"; use csv or jsonl",
                  v[SUBMIT_OPT_FORMAT]);
        return false;
    }
    if (v[SUBMIT_OPT_BATCH] != NULL && !valid_batch(v[SUBMIT_OPT_BATCH])) {
        cli_error("invalid --batch \"%s\"; use 1 to %d letters, digits, "
                  "'.', '_', ':' or '-'", v[SUBMIT_OPT_BATCH],
                  SUBMIT_BATCH_MAX);
        return false;
    }
    if (v[SUBMIT_OPT_BATCH] != NULL)
        snprintf(s->batch, sizeof s->batch, "%s", v[SUBMIT_OPT_BATCH]);
    return true;
}

/*
 * Writes a batch name made of the UTC time and 32 random bits, such as
 * "20260304T102231Z-9f3a01c2": it sorts by submission time, and two
 * submissions in the same second differ.
 */
static void
make_batch_name(char *out, size_t size)
{
    unsigned char rnd[4] = {0, 0, 0, 0};
    uint32_t fallback = (uint32_t)getpid() ^ (uint32_t)clock_mono_ms();
    char stamp[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    FILE *f = fopen("/dev/urandom", "rb");

    if (f == NULL || fread(rnd, 1, sizeof rnd, f) != sizeof rnd)
        memcpy(rnd, &fallback, sizeof rnd);
    if (f != NULL)
        fclose(f);
    if (gmtime_r(&now, &tm) != NULL)
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, size, "%s-%02x%02x%02x%02x", stamp, rnd[0], rnd[1],
             rnd[2], rnd[3]);
}

static bool
read_input(struct submit *s)
{
    FILE *f = stdin;
    enum status st;

    if (strcmp(s->path, "-") != 0) {
        f = fopen(s->path, "r");
        if (f == NULL) {
            cli_error("cannot open %s: %s", s->path, strerror(errno));
            return false;
        }
    }
    st = input_read(&s->in, f);
    if (st != ST_OK)
        cli_error("cannot read %s: %s", s->path, strerror(errno));
    if (f != stdin)
        fclose(f);
    return st == ST_OK;
}

static bool
open_output(struct submit *s)
{
    s->out = stdout;
    if (s->output_path == NULL || s->no_wait)
        return true;
    s->out = fopen(s->output_path, "w");
    if (s->out == NULL) {
        cli_error("cannot open --output %s for writing: %s", s->output_path,
                  strerror(errno));
        return false;
    }
    return true;
}

static bool
build_keys(struct submit *s)
{
    int n;

    keys_init(&s->keys, s->cfg.prefix);
    keys_name(&s->keys, KEY_JOBS, NULL, s->jobs_key, sizeof s->jobs_key);
    keys_name(&s->keys, KEY_BATCH, s->batch, s->batch_key,
              sizeof s->batch_key);
    /* The reply list is the client's own choice of name; the fleet only
     * pushes to whatever list a job names. */
    n = snprintf(s->reply_key, sizeof s->reply_key, "%sreply:%s",
                 s->keys.prefix, s->batch);
    if (n < 0 || (size_t)n >= sizeof s->reply_key ||
        (size_t)n > JOB_REPLY_MAX) {
        cli_error("reply list name %s is longer than %d bytes; use a "
                  "shorter --batch or --prefix", s->reply_key, JOB_REPLY_MAX);
        return false;
    }
    return true;
}

/* Runs one command and checks its reply type; writes the error if not. */
static bool
command_ok(redisReply *r, redisContext *c, const char *what, int type)
{
    if (r == NULL) {
        cli_error("%s failed: %s", what, c->errstr);
        return false;
    }
    if (r->type != type) {
        cli_error("%s failed: %s", what,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return false;
    }
    return true;
}

/*
 * Registers the batch: total first, so a reader of the counters has the
 * size before the first result is counted. HSETNX refuses a batch name
 * that is already in use, whose counters would mix with this run's.
 */
static bool
create_batch(struct submit *s)
{
    char what[KEYS_NAME_MAX + 32];
    redisReply *r;
    bool ok;

    snprintf(what, sizeof what, "HSETNX %s total", s->batch_key);
    r = redisCommand(s->c, "HSETNX %s total %llu", s->batch_key,
                     (unsigned long long)s->in.n);
    ok = command_ok(r, s->c, what, REDIS_REPLY_INTEGER);
    if (ok && r->integer == 0) {
        cli_error("batch %s already exists (key %s); choose another "
                  "--batch name or delete that key", s->batch, s->batch_key);
        ok = false;
    }
    freeReplyObject(r);
    if (!ok)
        return false;

    snprintf(what, sizeof what, "EXPIRE %s", s->batch_key);
    r = redisCommand(s->c, "EXPIRE %s %d", s->batch_key, s->cfg.result_ttl);
    ok = command_ok(r, s->c, what, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    return ok;
}

static void
append_xadd(struct submit *s, const struct input_line *line)
{
    char id[JOB_ID_MAX + 1];
    const char *argv[11];
    size_t lens[11];

    snprintf(id, sizeof id, "%s:%zu", s->batch, line->lineno);
    argv[0] = "XADD";
    argv[1] = s->jobs_key;
    argv[2] = "*";
    argv[3] = "email";
    argv[4] = line->text;
    argv[5] = "id";
    argv[6] = id;
    argv[7] = "batch";
    argv[8] = s->batch;
    argv[9] = "reply";
    argv[10] = s->reply_key;
    for (size_t i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    /* The address may hold NUL bytes; the fleet rejects it, but it must
     * arrive as it was given. */
    lens[4] = line->len;
    redisAppendCommandArgv(s->c, 11, argv, lens);
}

/* Sends lines [from, to) in one pipeline and checks every reply. */
static bool
send_chunk(struct submit *s, size_t from, size_t to)
{
    bool ok = true;

    for (size_t i = from; i < to; i++)
        append_xadd(s, &s->in.lines[i]);
    for (size_t i = from; i < to; i++) {
        void *reply = NULL;
        char what[KEYS_NAME_MAX + 64];

        if (redisGetReply(s->c, &reply) != REDIS_OK) {
            cli_error("XADD %s failed: %s", s->jobs_key, s->c->errstr);
            return false;
        }
        snprintf(what, sizeof what, "XADD %s (line %zu)", s->jobs_key,
                 s->in.lines[i].lineno);
        if (ok && !command_ok(reply, s->c, what, REDIS_REPLY_STRING))
            ok = false;
        freeReplyObject(reply);
    }
    return ok;
}

static bool
send_jobs(struct submit *s)
{
    for (size_t from = 0; from < s->in.n; from += SUBMIT_CHUNK) {
        size_t to = from + SUBMIT_CHUNK;

        if (to > s->in.n)
            to = s->in.n;
        if (!send_chunk(s, from, to)) {
            cli_error("%zu of %zu addresses of batch %s were submitted "
                      "before the failure", from, s->in.n, s->batch);
            return false;
        }
    }
    return true;
}

/* Returns the input index a job id of this batch names, or in.n. */
static size_t
match_id(const struct submit *s, const char *id)
{
    size_t blen = strlen(s->batch);
    unsigned long long lineno;
    const char *digits;
    char *end;

    if (id == NULL || strncmp(id, s->batch, blen) != 0 || id[blen] != ':')
        return s->in.n;
    digits = id + blen + 1;
    if (digits[0] < '1' || digits[0] > '9')
        return s->in.n;
    errno = 0;
    lineno = strtoull(digits, &end, 10);
    if (errno != 0 || *end != '\0' || lineno > SIZE_MAX)
        return s->in.n;
    return input_find(&s->in, (size_t)lineno);
}

static void
take_result(struct submit *s, const char *data, size_t len)
{
    struct result res;
    size_t idx;

    if (codec_decode_result(data, len, &res) != ST_OK) {
        s->n_bad++;
        return;
    }
    idx = match_id(s, res.id);
    if (idx == s->in.n || s->have[idx]) {
        s->n_stray++;
        codec_result_fini(&res);
        return;
    }
    /* The decoded strings now belong to s->results. */
    s->results[idx] = res;
    s->have[idx] = true;
    s->n_done++;
    if ((unsigned)res.status < VS_NSTATUSES)
        s->counts[res.status]++;
}

static void
show_progress(struct submit *s, bool last)
{
    int64_t now = clock_mono_ms();

    if (!s->progress)
        return;
    if (!last && s->progress_shown &&
        now - s->progress_ms < SUBMIT_PROGRESS_MS)
        return;
    s->progress_ms = now;
    s->progress_shown = true;
    /* \r and "erase to end of line" redraw the same terminal line. */
    fprintf(stderr, "\r%zu/%zu done  deliverable %zu  undeliverable %zu  "
            "risky %zu  unknown %zu\033[K%s", s->n_done, s->in.n,
            s->counts[VS_DELIVERABLE], s->counts[VS_UNDELIVERABLE],
            s->counts[VS_RISKY], s->counts[VS_UNKNOWN], last ? "\n" : "");
}

/*
 * Takes every result waiting on the reply list, SUBMIT_DRAIN at a time, in
 * one MULTI so LRANGE and LTRIM see the same list.
 */
static bool
drain_list(struct submit *s)
{
    size_t got;

    do {
        void *reply = NULL;
        redisReply *exec;
        redisReply *items;

        redisAppendCommand(s->c, "MULTI");
        redisAppendCommand(s->c, "LRANGE %s 0 %d", s->reply_key,
                           SUBMIT_DRAIN - 1);
        redisAppendCommand(s->c, "LTRIM %s %d -1", s->reply_key,
                           SUBMIT_DRAIN);
        redisAppendCommand(s->c, "EXEC");
        for (int i = 0; i < 3; i++) {
            if (redisGetReply(s->c, &reply) != REDIS_OK)
                break;
            freeReplyObject(reply);
            reply = NULL;
        }
        if (redisGetReply(s->c, &reply) != REDIS_OK ||
            !command_ok(reply, s->c, "LRANGE+LTRIM of the reply list",
                        REDIS_REPLY_ARRAY)) {
            freeReplyObject(reply);
            return false;
        }
        exec = reply;
        got = 0;
        items = exec->elements == 2 ? exec->element[0] : NULL;
        if (items != NULL && items->type == REDIS_REPLY_ARRAY) {
            got = items->elements;
            for (size_t i = 0; i < got; i++) {
                if (items->element[i]->type == REDIS_REPLY_STRING)
                    take_result(s, items->element[i]->str,
                                items->element[i]->len);
            }
        }
        freeReplyObject(exec);
    } while (got == SUBMIT_DRAIN);
    return true;
}

/*
 * One BLPOP of at most left_ms (and SUBMIT_POLL_MS), then a drain when it
 * got a result. The fractional timeout needs Redis 6.0 or later, which the
 * fleet needs anyway.
 */
static bool
poll_once(struct submit *s, int64_t left_ms)
{
    int64_t block_ms = left_ms;
    char block[32];
    redisReply *r;

    if (block_ms > SUBMIT_POLL_MS)
        block_ms = SUBMIT_POLL_MS;
    if (block_ms < SUBMIT_POLL_MIN_MS)
        block_ms = SUBMIT_POLL_MIN_MS;
    snprintf(block, sizeof block, "%.3f", (double)block_ms / 1000.0);
    r = redisCommand(s->c, "BLPOP %s %s", s->reply_key, block);
    if (r == NULL) {
        cli_error("BLPOP %s failed: %s", s->reply_key, s->c->errstr);
        return false;
    }
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return true;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        cli_error("BLPOP %s failed: %s", s->reply_key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return false;
    }
    take_result(s, r->element[1]->str, r->element[1]->len);
    freeReplyObject(r);
    if (s->n_done == s->in.n)
        return true;
    return drain_list(s);
}

static void
on_signal(int sig)
{
    (void)sig;
    submit_interrupted = 1;
}

static void
catch_signals(bool on)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on ? on_signal : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/*
 * Waits until every line has a result, the deadline passes or a signal
 * comes. Returns false only when Redis failed (after writing the error).
 */
static bool
wait_results(struct submit *s)
{
    int64_t deadline = clock_mono_ms() + (int64_t)(s->timeout * 1000.0);
    bool ok = true;

    catch_signals(true);
    show_progress(s, false);
    while (s->n_done < s->in.n && !submit_interrupted &&
           clock_mono_ms() < deadline) {
        ok = poll_once(s, deadline - clock_mono_ms());
        if (!ok)
            break;
        show_progress(s, false);
    }
    show_progress(s, true);
    catch_signals(false);
    /* A signal may end a read with an error; that is the interrupt. */
    return ok || submit_interrupted;
}

static bool
write_results(struct submit *s)
{
    const char *name = s->output_path != NULL ? s->output_path : "stdout";
    bool ok;

    if (s->format == OUTPUT_CSV)
        output_csv_header(s->out);
    for (size_t i = 0; i < s->in.n; i++) {
        if (s->have[i])
            output_result(s->out, s->format, &s->results[i]);
    }
    ok = fflush(s->out) == 0 && !ferror(s->out);
    if (s->out != stdout && fclose(s->out) != 0)
        ok = false;
    s->out = NULL;
    if (!ok)
        cli_error("writing results to %s failed: %s", name, strerror(errno));
    return ok;
}

static void
report_missing(const struct submit *s)
{
    char shown[SUBMIT_MISSING_SHOWN * (SUBMIT_BATCH_MAX + 24)];
    size_t used = 0;
    size_t listed = 0;

    shown[0] = '\0';
    for (size_t i = 0; i < s->in.n && listed < SUBMIT_MISSING_SHOWN; i++) {
        int n;

        if (s->have[i])
            continue;
        n = snprintf(shown + used, sizeof shown - used, "%s%s:%zu",
                     listed > 0 ? ", " : "", s->batch,
                     s->in.lines[i].lineno);
        if (n < 0 || (size_t)n >= sizeof shown - used)
            break;
        used += (size_t)n;
        listed++;
    }
    cli_error("%s with %zu of %zu results missing (batch %s, such as %s); "
              "results that come later can be read with mxprobe result ID",
              submit_interrupted ? "interrupted" : "timed out",
              s->in.n - s->n_done, s->in.n, s->batch, shown);
}

static void
report_ignored(const struct submit *s)
{
    if (s->n_stray > 0)
        cli_error("ignored %zu results on %s that belong to no line of "
                  "this batch or repeat one", s->n_stray, s->reply_key);
    if (s->n_bad > 0)
        cli_error("ignored %zu items on %s that are not result maps",
                  s->n_bad, s->reply_key);
}

/* Submits, waits and writes; the part of submit_main after the options. */
static int
submit_run(struct submit *s)
{
    if (!read_input(s) || !open_output(s))
        return CLI_EXIT_FAIL;
    s->results = xcalloc(s->in.n + 1, sizeof *s->results);
    s->have = xcalloc(s->in.n + 1, sizeof *s->have);
    if (s->batch[0] == '\0')
        make_batch_name(s->batch, sizeof s->batch);
    if (!build_keys(s))
        return CLI_EXIT_FAIL;
    if (s->in.n == 0) {
        cli_error("no addresses in %s; nothing submitted", s->path);
        if (s->no_wait)
            return CLI_EXIT_OK;
        return write_results(s) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }

    s->c = cli_redis_connect(&s->cfg, SUBMIT_REDIS_TIMEOUT);
    if (s->c == NULL || !create_batch(s) || !send_jobs(s))
        return CLI_EXIT_FAIL;
    if (s->no_wait) {
        fputs(s->batch, stdout);
        fputc('\n', stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }

    s->progress = isatty(STDERR_FILENO) == 1;
    if (!wait_results(s))
        return CLI_EXIT_FAIL;
    report_ignored(s);
    if (!write_results(s))
        return CLI_EXIT_FAIL;
    if (s->n_done < s->in.n) {
        report_missing(s);
        return CLI_EXIT_TIMEOUT;
    }
    return CLI_EXIT_OK;
}

static void
submit_fini(struct submit *s)
{
    for (size_t i = 0; i < s->in.n && s->have != NULL; i++) {
        if (s->have[i])
            codec_result_fini(&s->results[i]);
    }
    free(s->results);
    free(s->have);
    input_fini(&s->in);
    if (s->out != NULL && s->out != stdout)
        fclose(s->out);
    if (s->c != NULL)
        redisFree(s->c);
}

int
submit_main(int argc, char **argv)
{
    struct submit s;
    struct cli_args args;
    char err[256];
    int rc;

    memset(&s, 0, sizeof s);
    if (cli_parse(submit_opts, SUBMIT_NOPTS, argc, argv, &args, err,
                  sizeof err) != ST_OK) {
        cli_error("%s; see mxprobe help submit", err);
        cli_args_fini(&args);
        return CLI_EXIT_USAGE;
    }
    if (args.help) {
        submit_usage(stdout);
        cli_args_fini(&args);
        return CLI_EXIT_OK;
    }
    if (!take_options(&s, &args) || cli_load_config(&args, &s.cfg) != ST_OK) {
        cli_args_fini(&args);
        return CLI_EXIT_USAGE;
    }

    rc = submit_run(&s);
    submit_fini(&s);
    config_free(&s.cfg);
    cli_args_fini(&args);
    return rc;
}
