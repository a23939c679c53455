/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for classify_reply(). Every line of the real-reply corpus in
 * tests/data/reply_corpus.tsv is parsed with the real reply parser and
 * checked. Focused cases cover what the verdict contract depends on:
 * blocked is never undeliverable, a refusal before RCPT never names a
 * mailbox, retry hints, 4xx greylisting and the two meanings of 452.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "classify.h"
#include "smtp_reply.h"

/* Relative to the repository root, where CTest runs the unit tests. */
#define CORPUS_PATH "tests/data/reply_corpus.tsv"
#define CORPUS_MIN_LINES 300
#define CORPUS_LINE_MAX 4096
#define CORPUS_FIELDS 6

/* Every non-2xx reply of the corpus, kept for the stage properties. */
#define SAVED_MAX 512

struct corpus_entry {
    enum smtp_stage stage;
    struct smtp_reply reply;
    enum reply_category category;
};

struct corpus_stats {
    size_t lines;
    size_t multi_line;
    size_t without_enhanced;
    unsigned categories_seen[RC_NCATEGORIES];
    unsigned stages_seen[SMTP_STAGE_NSTAGES];
    struct corpus_entry saved[SAVED_MAX];
    size_t n_saved;
};

/*
 * Turns the corpus notation (a literal backslash-n between lines) into
 * wire form with CRLF line ends. Returns false when out is too small.
 */
static bool
unescape_reply(const char *in, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; in[i] != '\0'; i++) {
        if (n + 3 > size)
            return false;
        if (in[i] == '\\' && in[i + 1] == 'n') {
            out[n++] = '\r';
            out[n++] = '\n';
            i++;
        } else {
            out[n++] = in[i];
        }
    }
    if (n + 3 > size)
        return false;
    out[n++] = '\r';
    out[n++] = '\n';
    out[n] = '\0';
    return true;
}

/* Parses one reply written in corpus notation with smtp_reply_feed(). */
static bool
parse_reply(const char *escaped, struct smtp_reply *out)
{
    char wire[CORPUS_LINE_MAX];
    struct smtp_reply_parser p;
    size_t used = 0;
    size_t len;

    if (!unescape_reply(escaped, wire, sizeof wire))
        return false;
    len = strlen(wire);
    smtp_reply_parser_init(&p);
    return smtp_reply_feed(&p, wire, len, &used, out) == ST_OK && used == len;
}

/* Splits line at tabs in place. Returns the number of fields found. */
static size_t
split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        char *tab = strchr(p, '\t');

        fields[n++] = p;
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static void
report(size_t lineno, const char *what, const char *got, const char *want,
       char **f)
{
    check_record(0, what, CORPUS_PATH, (int)lineno);
    fprintf(stderr, "    got %s, want %s\n    reply: %s\n    source: %s\n", got,
            want, f[1], f[5]);
}

/* Checks one corpus line; fields are stage, reply, category, status,
 * reason, source. */
static void
check_corpus_line(size_t lineno, char **f, struct corpus_stats *stats)
{
    struct corpus_entry e;
    struct classification c;

    if (!smtp_stage_parse(f[0], &e.stage) ||
        !reply_category_parse(f[2], &e.category)) {
        report(lineno, "stage and category are known names", f[0], f[2], f);
        return;
    }
    if (!parse_reply(f[1], &e.reply)) {
        report(lineno, "reply parses", "parse error", "one reply", f);
        return;
    }
    classify_reply(e.stage, &e.reply, &c);
    check_count++;
    if (c.category != e.category)
        report(lineno, "category", reply_category_str(c.category), f[2], f);
    if (strcmp(verdict_status_str(c.status), f[3]) != 0)
        report(lineno, "status", verdict_status_str(c.status), f[3], f);
    if (strcmp(verdict_reason_str(c.reason), f[4]) != 0)
        report(lineno, "reason", verdict_reason_str(c.reason), f[4], f);
    if (c.category != e.category)
        fprintf(stderr, "    deciding rule: %s\n", c.rule);

    stats->lines++;
    stats->categories_seen[e.category]++;
    stats->stages_seen[e.stage]++;
    stats->multi_line += e.reply.nlines > 1;
    stats->without_enhanced += e.reply.enhanced[0] == '\0';
    if (e.reply.code >= 400 && stats->n_saved < SAVED_MAX)
        stats->saved[stats->n_saved++] = e;
}

static void
test_corpus(struct corpus_stats *stats)
{
    char line[CORPUS_LINE_MAX];
    size_t lineno = 0;
    FILE *fp = fopen(CORPUS_PATH, "r");

    CHECK(fp != NULL);
    if (fp == NULL) {
        fprintf(stderr, "    cannot open %s; run from the repository root\n",
                CORPUS_PATH);
        return;
    }
    while (fgets(line, sizeof line, fp) != NULL) {
        char *f[CORPUS_FIELDS];

        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (split_fields(line, f, CORPUS_FIELDS) != CORPUS_FIELDS) {
            check_record(0, "line has 6 tab-separated fields", CORPUS_PATH,
                         (int)lineno);
            continue;
        }
        check_corpus_line(lineno, f, stats);
    }
    fclose(fp);
}

/* The corpus must keep covering what the classifier decides. */
static void
test_corpus_coverage(const struct corpus_stats *stats)
{
    CHECK(stats->lines >= CORPUS_MIN_LINES);
    CHECK(stats->multi_line >= 5);
    CHECK(stats->without_enhanced >= 20);
    for (int i = 0; i < RC_NCATEGORIES; i++) {
        if (stats->categories_seen[i] == 0)
            fprintf(stderr, "    no corpus line for category %s\n",
                    reply_category_str((enum reply_category)i));
        CHECK(stats->categories_seen[i] > 0);
    }
    CHECK(stats->stages_seen[SMTP_STAGE_GREETING] > 0);
    CHECK(stats->stages_seen[SMTP_STAGE_EHLO] > 0);
    CHECK(stats->stages_seen[SMTP_STAGE_MAIL] > 0);
    CHECK(stats->stages_seen[SMTP_STAGE_RCPT] > 0);
}

static bool
is_mailbox_category(enum reply_category c)
{
    return c == RC_MAILBOX_NOT_FOUND || c == RC_MAILBOX_DISABLED ||
           c == RC_MAILBOX_FULL;
}

/*
 * Replays every failure reply of the corpus at every stage: before RCPT
 * no reply may name a mailbox, and a blocked reply is never undeliverable.
 */
static void
test_stage_properties(const struct corpus_stats *stats)
{
    static const enum smtp_stage early[] = {
        SMTP_STAGE_CONNECT,
        SMTP_STAGE_GREETING,
        SMTP_STAGE_EHLO,
        SMTP_STAGE_MAIL,
    };

    CHECK(stats->n_saved > 100);
    for (size_t i = 0; i < stats->n_saved; i++) {
        const struct corpus_entry *e = &stats->saved[i];

        for (size_t s = 0; s < sizeof early / sizeof early[0]; s++) {
            struct classification c;

            classify_reply(early[s], &e->reply, &c);
            CHECK(!is_mailbox_category(c.category));
            CHECK(c.reason != VR_MAILBOX_NOT_FOUND);
            if (early[s] == SMTP_STAGE_MAIL && e->reply.code >= 500)
                CHECK(c.status != VS_UNDELIVERABLE);
            if (c.category == RC_BLOCKED)
                CHECK(c.status == VS_UNKNOWN);
        }
    }
}

/* Classifies one reply written in corpus notation. */
static struct classification
classify_text(enum smtp_stage stage, const char *escaped)
{
    struct smtp_reply r;
    struct classification c;

    memset(&c, 0, sizeof c);
    CHECK(parse_reply(escaped, &r));
    classify_reply(stage, &r, &c);
    return c;
}

static void
test_blocked_never_undeliverable(void)
{
    static const char *const replies[] = {
        "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using "
        "zen.spamhaus.org",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
        "using zen.spamhaus.org; user unknown",
        "550 5.1.1 blocked",
        "421 4.7.0 IP not in whitelist for RCPT domain, closing connection.",
        "554 No SMTP service here",
    };

    for (int stage = SMTP_STAGE_CONNECT; stage < SMTP_STAGE_NSTAGES; stage++) {
        for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
            struct classification c =
                classify_text((enum smtp_stage)stage, replies[i]);

            if (c.category == RC_BLOCKED)
                CHECK_INT(c.status, VS_UNKNOWN);
            CHECK(c.status != VS_UNDELIVERABLE);
        }
    }
}

static void
test_mail_stage_never_mailbox(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_MAIL, "550 5.1.1 <x@example.com>: "
                                       "Recipient address rejected: User "
                                       "unknown in local recipient table");
    CHECK_INT(c.category, RC_SENDER_REJECTED);
    CHECK_STR(c.rule, "default_5xx_mail");

    c = classify_text(SMTP_STAGE_MAIL, "552 5.2.2 user is over quota");
    CHECK(c.category != RC_MAILBOX_FULL);
    CHECK_INT(c.status, VS_UNKNOWN);

    c = classify_text(SMTP_STAGE_GREETING,
                      "550 Requested action not taken: mailbox unavailable");
    CHECK_INT(c.category, RC_BLOCKED);
    CHECK_INT(c.reason, VR_BLOCKED);
}

static void
test_greylisting(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_RCPT, "450 4.2.0 <u@example.com>: Recipient "
                                       "address rejected: Greylisted, see "
                                       "http://postgrey.schweikert.ch/help/"
                                       "example.com.html");
    CHECK_INT(c.category, RC_GREYLISTED);
    CHECK_INT(c.reason, VR_GREYLISTED);
    CHECK(c.retry);

    /* The greylist hint wins over the sender wording of the same reply. */
    c = classify_text(SMTP_STAGE_RCPT,
                      "450 4.2.0 Sender address rejected: Greylisted for "
                      "300 sec.");
    CHECK_INT(c.category, RC_GREYLISTED);

    c = classify_text(SMTP_STAGE_MAIL, "451 4.7.1 GRAYLISTED, try later");
    CHECK_INT(c.category, RC_GREYLISTED);

    /* A 5xx cannot be greylisting: it is permanent. */
    c = classify_text(SMTP_STAGE_RCPT, "550 5.7.1 greylisted forever");
    CHECK(c.category != RC_GREYLISTED);
    CHECK(!c.retry);

    /* A 4.7.1 deferral that only asks to retry is how greylisting
     * milters answer; a 4.3.x one is a server problem. */
    c = classify_text(SMTP_STAGE_RCPT, "451 4.7.1 Please try again later");
    CHECK_INT(c.category, RC_GREYLISTED);
    CHECK(c.retry);
    c = classify_text(SMTP_STAGE_RCPT, "451 4.3.0 Please try again later");
    CHECK_INT(c.category, RC_TEMPORARY);
    CHECK(c.retry);
    c = classify_text(SMTP_STAGE_GREETING, "451 4.7.1 Try again later");
    CHECK_INT(c.category, RC_TEMPORARY);
    /* Postfix's answer when a milter fails is a server problem. */
    c = classify_text(SMTP_STAGE_RCPT,
                      "451 4.7.1 Service unavailable - try again later");
    CHECK_INT(c.category, RC_TEMPORARY);

    /* Without a hint, a 4xx is only a temporary failure. */
    c = classify_text(SMTP_STAGE_RCPT, "451 Temporary local problem");
    CHECK_INT(c.category, RC_TEMPORARY);
    CHECK(c.retry);
}

/* Words about the recipient's own account outrank the words that
 * otherwise mean our IP address or session was refused. */
static void
test_blocked_words_about_the_mailbox(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_RCPT,
                      "550 Mailbox is blocked due to long-time inactivity");
    CHECK_INT(c.category, RC_MAILBOX_DISABLED);
    c = classify_text(SMTP_STAGE_MAIL,
                      "550 Mailbox is blocked due to long-time inactivity");
    CHECK_INT(c.category, RC_BLOCKED);
    CHECK_INT(c.status, VS_UNKNOWN);

    /* "Access denied" refuses us, except in Exchange Online's
     * directory-based edge blocking phrase. */
    c = classify_text(SMTP_STAGE_RCPT,
                      "550 Mailbox unavailable or access denied");
    CHECK_INT(c.category, RC_BLOCKED);
    CHECK_INT(c.status, VS_UNKNOWN);
    c = classify_text(SMTP_STAGE_RCPT, "550 5.4.1 Recipient address "
                                       "rejected: Access denied");
    CHECK_INT(c.category, RC_MAILBOX_NOT_FOUND);
    CHECK_STR(c.rule, "text_directory_reject");
    c = classify_text(SMTP_STAGE_RCPT, "554 5.7.1 <b@example.com>: Sender "
                                       "address rejected: Access denied");
    CHECK_INT(c.category, RC_SENDER_REJECTED);

    /* A text that names a full mailbox wins over a wrong 5.1.1. */
    c = classify_text(SMTP_STAGE_RCPT,
                      "552 5.1.1 Boite du destinataire pleine. Recipient "
                      "overquota.");
    CHECK_INT(c.category, RC_MAILBOX_FULL);
    CHECK_INT(c.status, VS_RISKY);
}

static void
test_452_quota_vs_recipients(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_RCPT, "452 4.2.2 The email account that you "
                                       "tried to reach is over quota.");
    CHECK_INT(c.category, RC_MAILBOX_FULL);
    CHECK_INT(c.status, VS_RISKY);
    CHECK_INT(c.reason, VR_MAILBOX_FULL);

    c = classify_text(SMTP_STAGE_RCPT, "452 4.5.3 Error: too many recipients");
    CHECK_INT(c.category, RC_RATE_LIMITED);
    CHECK_INT(c.reason, VR_RATE_LIMITED);
    CHECK(c.retry);

    c = classify_text(SMTP_STAGE_RCPT, "452 Too many recipients received");
    CHECK_INT(c.category, RC_RATE_LIMITED);

    c = classify_text(SMTP_STAGE_RCPT, "452 4.2.2 Mailbox full");
    CHECK_INT(c.category, RC_MAILBOX_FULL);

    /* RFC 5321's 452 text is about the server's disk, not the mailbox. */
    c = classify_text(SMTP_STAGE_RCPT,
                      "452 Requested action not taken: insufficient system "
                      "storage");
    CHECK_INT(c.category, RC_TEMPORARY);
}

static void
test_full_is_risky_for_4xx_and_5xx(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_RCPT, "552 5.2.2 <u@icloud.com>: user is "
                                       "over quota");
    CHECK_INT(c.status, VS_RISKY);
    CHECK(!c.retry);

    c = classify_text(SMTP_STAGE_RCPT, "422 4.2.2 Quota limit exceeded");
    CHECK_INT(c.status, VS_RISKY);
    CHECK(c.retry);
}

static void
test_retry_hints(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_GREETING, "421 mx.example.com Service not "
                                           "available, closing "
                                           "transmission channel");
    CHECK_INT(c.category, RC_SERVICE_CLOSING);
    CHECK(c.retry);

    c = classify_text(SMTP_STAGE_RCPT, "550 5.1.1 User unknown");
    CHECK(!c.retry);

    c = classify_text(SMTP_STAGE_RCPT,
                      "450 4.7.1 Client host rejected: cannot find your "
                      "hostname, [192.0.2.1]");
    CHECK_INT(c.category, RC_BLOCKED);
    CHECK(c.retry);

    c = classify_text(SMTP_STAGE_RCPT, "554 5.7.1 Service unavailable; "
                                       "Client host [192.0.2.1] blocked "
                                       "using zen.spamhaus.org");
    CHECK(!c.retry);

    c = classify_text(SMTP_STAGE_RCPT, "250 2.1.5 Ok");
    CHECK_INT(c.category, RC_ACCEPTED);
    CHECK_INT(c.status, VS_DELIVERABLE);
    CHECK(!c.retry);
}

static void
test_user_unknown_needs_5xx(void)
{
    struct classification c;

    /* Postfix answers 450 for unknown users in its safety mode. */
    c = classify_text(SMTP_STAGE_RCPT, "450 4.1.1 <u@example.com>: "
                                       "Recipient address rejected: User "
                                       "unknown in local recipient table");
    CHECK_INT(c.category, RC_TEMPORARY);
    CHECK(c.status != VS_UNDELIVERABLE);
}

static void
test_keyword_matching(void)
{
    struct classification c;

    c = classify_text(SMTP_STAGE_RCPT, "550 USER UNKNOWN");
    CHECK_INT(c.category, RC_MAILBOX_NOT_FOUND);

    /* "rbl" only where a word starts. */
    c = classify_text(SMTP_STAGE_RCPT, "550 verbless refusal");
    CHECK_INT(c.category, RC_PERMANENT);
    CHECK_STR(c.rule, "default_5xx_rcpt");

    c = classify_text(SMTP_STAGE_RCPT, "550 listed on rbl.example.org");
    CHECK_INT(c.category, RC_BLOCKED);
}

static void
test_enhanced_codes(void)
{
    struct smtp_reply r;
    struct classification c;

    /* A generic 5.5.0 must not hide "mailbox unavailable". */
    c = classify_text(SMTP_STAGE_RCPT, "550 5.5.0 Requested action not "
                                       "taken: mailbox unavailable");
    CHECK_INT(c.category, RC_MAILBOX_NOT_FOUND);

    /* 5.1.10 is Exchange's recipient-not-found with 550, and null MX
     * (RFC 7505) with 556. */
    c = classify_text(SMTP_STAGE_RCPT, "550 5.1.10 RESOLVER.ADR."
                                       "RecipientNotFound");
    CHECK_INT(c.category, RC_MAILBOX_NOT_FOUND);
    c = classify_text(SMTP_STAGE_RCPT, "556 5.1.10 Recipient address has "
                                       "null MX");
    CHECK_INT(c.category, RC_NO_MAIL_SERVICE);

    /* An enhanced code whose class disagrees with the reply is ignored. */
    memset(&r, 0, sizeof r);
    r.code = 550;
    snprintf(r.enhanced, sizeof r.enhanced, "%s", "4.1.1");
    snprintf(r.text, sizeof r.text, "%s", "no reason given");
    r.nlines = 1;
    classify_reply(SMTP_STAGE_RCPT, &r, &c);
    CHECK_INT(c.category, RC_PERMANENT);

    snprintf(r.enhanced, sizeof r.enhanced, "%s", "5.1.1");
    classify_reply(SMTP_STAGE_RCPT, &r, &c);
    CHECK_INT(c.category, RC_MAILBOX_NOT_FOUND);
    CHECK_STR(c.rule, "esc_bad_mailbox");
}

static void
test_unexpected_codes(void)
{
    struct smtp_reply r;
    struct classification c;

    memset(&r, 0, sizeof r);
    r.code = 354;
    classify_reply(SMTP_STAGE_RCPT, &r, &c);
    CHECK_INT(c.category, RC_PROTOCOL_ERROR);
    CHECK_STR(c.rule, "unexpected_code");

    r.code = 199;
    classify_reply(SMTP_STAGE_GREETING, &r, &c);
    CHECK_INT(c.category, RC_PROTOCOL_ERROR);

    r.code = 600;
    classify_reply(SMTP_STAGE_RCPT, &r, &c);
    CHECK_INT(c.category, RC_PROTOCOL_ERROR);
    CHECK_INT(c.status, VS_UNKNOWN);
}

static void
test_category_names(void)
{
    for (int i = 0; i < RC_NCATEGORIES; i++) {
        enum reply_category back = RC_NCATEGORIES;
        const char *name = reply_category_str((enum reply_category)i);

        CHECK(reply_category_parse(name, &back));
        CHECK_INT(back, i);
    }
    CHECK_STR(reply_category_str(RC_NCATEGORIES), "unknown");
    {
        enum reply_category out;

        CHECK(!reply_category_parse("no_such_category", &out));
    }
}

int
main(void)
{
    static struct corpus_stats stats;

    test_corpus(&stats);
    test_corpus_coverage(&stats);
    test_stage_properties(&stats);
    test_blocked_never_undeliverable();
    test_mail_stage_never_mailbox();
    test_greylisting();
    test_blocked_words_about_the_mailbox();
    test_452_quota_vs_recipients();
    test_full_is_risky_for_4xx_and_5xx();
    test_retry_hints();
    test_user_unknown_needs_5xx();
    test_keyword_matching();
    test_enhanced_codes();
    test_unexpected_codes();
    test_category_names();
    return check_exit("test_classify");
}
