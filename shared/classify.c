/* SPDX-License-Identifier: MIT */
/*
 * SMTP reply classification: one ordered table of rules, first match wins.
 * A rule can test the stage, the reply class, the basic code, a range of
 * RFC 3463 enhanced codes and keywords of the text. The order of the rows
 * is the policy, and tests/data/reply_corpus.tsv contains the real replies
 * that decided it.
 */
#include "classify.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Stage masks. The connect stage has no reply of its own, so it counts
 * as the greeting. */
#define STAGE_BIT(s) (1u << (unsigned)(s))
#define ST_GREET                                                               \
    (STAGE_BIT(SMTP_STAGE_CONNECT) | STAGE_BIT(SMTP_STAGE_GREETING))
#define ST_EHLO STAGE_BIT(SMTP_STAGE_EHLO)
#define ST_MAIL STAGE_BIT(SMTP_STAGE_MAIL)
#define ST_RCPT STAGE_BIT(SMTP_STAGE_RCPT)
#define ST_ANY (ST_GREET | ST_EHLO | ST_MAIL | ST_RCPT)

/* Reply classes a rule applies to. */
#define CL_4 1u
#define CL_5 2u
#define CL_45 (CL_4 | CL_5)

/* esc_subject value of a rule without an enhanced-code condition. */
#define ESC_NONE (-1)

enum retry_policy {
    RETRY_NEVER,
    RETRY_ON_4XX, /* only when the reply is a 4xx */
    RETRY_ALWAYS
};

struct category_info {
    const char *name;
    enum verdict_reason reason;
    enum retry_policy retry;
};

/*
 * Relay denied maps to blocked: the host refuses to take mail for the
 * domain from us (a stale MX record, a backup MX that checks its list,
 * an anti-abuse rule), which tells nothing about the mailbox. It is not
 * temporary either, because retrying the same host gives the same answer.
 * Other 5xx replies at RCPT that name no cause also map to blocked: the
 * server refused us without evidence that the mailbox is missing, and
 * calling that undeliverable would turn policy refusals into false bounces.
 */
static const struct category_info categories[] = {
    [RC_ACCEPTED] = {"accepted", VR_ACCEPTED, RETRY_NEVER},
    [RC_MAILBOX_NOT_FOUND] = {"mailbox_not_found", VR_MAILBOX_NOT_FOUND,
                              RETRY_NEVER},
    [RC_MAILBOX_DISABLED] = {"mailbox_disabled", VR_MAILBOX_DISABLED,
                             RETRY_NEVER},
    [RC_MAILBOX_FULL] = {"mailbox_full", VR_MAILBOX_FULL, RETRY_ON_4XX},
    [RC_BLOCKED] = {"blocked", VR_BLOCKED, RETRY_ON_4XX},
    [RC_RELAY_DENIED] = {"relay_denied", VR_BLOCKED, RETRY_ON_4XX},
    [RC_RATE_LIMITED] = {"rate_limited", VR_RATE_LIMITED, RETRY_ALWAYS},
    [RC_GREYLISTED] = {"greylisted", VR_GREYLISTED, RETRY_ALWAYS},
    [RC_SENDER_REJECTED] = {"sender_rejected", VR_SENDER_REJECTED,
                            RETRY_ON_4XX},
    [RC_PROTOCOL_ERROR] = {"protocol_error", VR_PROTOCOL_ERROR, RETRY_NEVER},
    [RC_TLS_REQUIRED] = {"tls_required", VR_PROTOCOL_ERROR, RETRY_NEVER},
    [RC_SERVICE_CLOSING] = {"service_closing", VR_TEMPORARY_FAILURE,
                            RETRY_ALWAYS},
    [RC_NO_MAIL_SERVICE] = {"no_mail_service", VR_NO_MAIL_SERVER, RETRY_NEVER},
    [RC_TEMPORARY] = {"temporary_failure", VR_TEMPORARY_FAILURE, RETRY_ALWAYS},
    [RC_PERMANENT] = {"permanent_failure", VR_BLOCKED, RETRY_NEVER},
};

_Static_assert(sizeof categories / sizeof categories[0] == RC_NCATEGORIES,
               "categories must describe every reply category");

/*
 * Keyword lists. A keyword matches case-insensitively where a word starts,
 * so "greylist" also finds "Greylisted" but "rbl" does not match inside
 * "verbless". Phrases are kept long enough not to appear by accident in
 * the other categories' replies of the corpus.
 */
/* greylistd for Exim defers with "<ip> is not yet authorized to deliver
 * mail from <sender> to <rcpt>. Please try later." */
static const char *const kw_greylist[] = {
    "greylist",  "graylist",  "grey-list",          "gray-list",
    "grey list", "gray list", "not yet authorized", NULL,
};

static const char *const kw_protocol[] = {
    "improper use of smtp command pipelining",
    "bad sequence of commands",
    "command not recognized",
    "command unrecognized",
    "unrecognized command",
    "syntax error",
    "syntactically invalid",
    "protocol violation",
    NULL,
};

static const char *const kw_relay[] = {
    "relay access denied",    "relaying denied",
    "relay denied",           "relay prohibited",
    "relaying prohibited",    "relay not permitted",
    "relaying not permitted", "not permitted to relay",
    "relay not allowed",      "relaying not allowed",
    "relaying disallowed",    "unable to relay",
    "we do not relay",        "allowed rcpthosts",
    "list of allowed",        NULL,
};

/* Refusals of our IP address or HELO name. They win over rate-limit and
 * mailbox wording in the same reply. */
static const char *const kw_blocked[] = {
    "blocked",
    "block list",
    "blocklist",
    "black list",
    "blacklist",
    "blackhole",
    "dnsbl",
    "rbl",
    "spamhaus",
    "spamcop",
    "barracuda",
    "sorbs",
    "listed at",
    "listed on",
    "listed by",
    "client host rejected",
    "helo command rejected",
    "bad helo",
    "reverse dns",
    "reverse hostname",
    "ptr record",
    "not in whitelist",
    "banned",
    "permanently deferred",
    "authentication required",
    "not authenticated",
    "not accepting connections",
    "dialup",
    "(bl)",
    NULL,
};

static const char *const kw_sender[] = {
    "sender address rejected",
    "sender verify failed",
    "sender rejected",
    "sender denied",
    "envelope sender",
    "domain of sender address",
    "invalid sender",
    "null sender",
    "badmailfrom",
    NULL,
};

static const char *const kw_tls[] = {
    "starttls", "tls required", "requires encryption", "encryption required",
    NULL,
};

static const char *const kw_rate[] = {
    "rate limit",
    "rate-limit",
    "too many",
    "concurrent connections",
    "too quickly",
    "too fast",
    "receiving mail at a rate",
    "excessive",
    "unexpected volume",
    "sending quota",
    "sending limit",
    "relay limit",
    "per connection",
    "throttl",
    "frequency limit",
    NULL,
};

/* "overquota" is one word at iCloud ("user is overquota") and Orange
 * ("Recipient overquota"); "quota exceed" also finds "quota exceeded". */
static const char *const kw_full[] = {
    "over quota",         "overquota",
    "quota exceed",       "quota limit",
    "exceeded its quota", "mailbox full",
    "mailbox is full",    "full mailbox",
    "inbox is full",      "out of storage",
    "storage limit",      "exceeded storage",
    "storage allocation", NULL,
};

static const char *const kw_disabled[] = {
    "disabled",
    "inactive",
    "deactivated",
    "suspended",
    "frozen",
    "is locked",
    "account closed",
    "no longer valid",
    "no longer active",
    "no longer accepts",
    NULL,
};

/* "Blocked" about the recipient's own mailbox or account means it is
 * disabled, not that we are blocked: "550 Mailbox is blocked due to
 * long-time inactivity". Checked before the blocked words. */
static const char *const kw_mailbox_blocked[] = {
    "mailbox is blocked", "mailbox has been blocked",
    "account is blocked", "account has been blocked",
    "account blocked",    NULL,
};

/* Exchange Online's directory-based edge blocking rejects unknown
 * recipients with "Recipient address rejected: Access denied" (5.4.1).
 * The phrase must win over the generic "access denied" below. */
static const char *const kw_directory_reject[] = {
    "recipient address rejected: access denied",
    NULL,
};

/* "Access denied" or "no access" anywhere else refuses us, not the
 * mailbox. QQ Mail's "550 Mailbox unavailable or access denied" is
 * also sent to senders it rate-limits, and Exchange Online sends "Access
 * denied, please try again later" (4.7.850-899) to IP addresses under
 * evaluation. */
static const char *const kw_access_denied[] = {
    "access denied",
    "no access",
    NULL,
};

/* "not exist" also finds "does not exist" and "user not exist"; "no
 * exist" finds "does no exists", misspelled so by a Chinese provider. */
static const char *const kw_not_found[] = {
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "not exist",
    "no exist",
    "doesn't exist",
    "mailbox unavailable",
    "mailbox not found",
    "user not found",
    "recipient not found",
    "no user record",
    "invalid recipient",
    "invalid mailbox",
    "invalid address",
    "unknown recipient",
    "recipient unknown",
    "addressee unknown",
    "address unknown",
    "no such person",
    "no such email",
    "account not found",
    "not a valid mailbox",
    "marked as invalid",
    "unrouteable address",
    "no mailbox",
    "not our customer",
    "illegal alias",
    "this user doesn't have",
    NULL,
};

/* A 4.7.1 deferral that calls the service unavailable reports a server
 * problem, not greylisting. Postfix sends "451 4.7.1 Service unavailable -
 * try again later" when a milter fails, which looks like a greylisting deferral
 * otherwise. */
static const char *const kw_unavailable[] = {
    "service unavailable",
    "temporarily unavailable",
    NULL,
};

/* What a greylisting server adds to a 4.7.1 deferral that names no other
 * cause: rspamd's greylisting makes Postfix send "4.7.1 Try again
 * later". */
static const char *const kw_retry_later[] = {
    "try again later", "try later", "retry later", "come back later", NULL,
};

/* Policy words that only decide when nothing more specific did. */
static const char *const kw_policy[] = {
    "spam", "unsolicited", "reputation", "polic", "not authorized", NULL,
};

struct rule {
    const char *name;
    unsigned stages;
    unsigned classes;
    int code;                 /* basic reply code, 0 for any */
    int esc_subject;          /* ESC_NONE, or the X.<subject>.Z to match */
    int esc_lo, esc_hi;       /* detail range of the enhanced code */
    const char *const *words; /* any of these in the text, or NULL */
    enum reply_category category;
};

/* Row constructors for the three common shapes of rule. */
/* clang-format off */
#define WORDS(name, st, cl, kw, cat) \
    {name, st, cl, 0, ESC_NONE, 0, 0, kw, cat}
#define ESC(name, st, cl, subj, lo, hi, cat) \
    {name, st, cl, 0, subj, lo, hi, NULL, cat}
#define CODE(name, st, code, cat) \
    {name, st, CL_45, code, ESC_NONE, 0, 0, NULL, cat}
/* clang-format on */

/*
 * The rules, first match wins. Text comes before enhanced codes because
 * real servers attach generic or even wrong codes to clear text. Gmail
 * sends "550 5.2.1" (RFC 3463: mailbox disabled) for a recipient that gets
 * too much mail. Postfix sends "554 5.7.1" for relay denied, mailfront
 * "553 5.1.1" for a domain it does not serve, and iCloud "550 5.1.1" for a
 * mailbox its owner deactivated. Specific enhanced codes still come before
 * the weak policy words and the basic code. Mailbox categories require the
 * RCPT stage and, except "full", a 5xx, because a 4xx "user unknown" comes
 * from Postfix's safety mode and must be retried, not reported.
 */
static const struct rule rules[] = {
    /* Phrases that name the cause. */
    WORDS("text_greylist", ST_ANY, CL_4, kw_greylist, RC_GREYLISTED),
    WORDS("text_protocol", ST_ANY, CL_45, kw_protocol, RC_PROTOCOL_ERROR),
    WORDS("text_relay", ST_ANY, CL_45, kw_relay, RC_RELAY_DENIED),
    WORDS("text_mailbox_blocked", ST_RCPT, CL_5, kw_mailbox_blocked,
          RC_MAILBOX_DISABLED),
    WORDS("text_blocked", ST_ANY, CL_45, kw_blocked, RC_BLOCKED),
    WORDS("text_sender", ST_ANY, CL_45, kw_sender, RC_SENDER_REJECTED),
    WORDS("text_tls", ST_ANY, CL_45, kw_tls, RC_TLS_REQUIRED),
    WORDS("text_rate", ST_ANY, CL_45, kw_rate, RC_RATE_LIMITED),
    WORDS("text_directory_reject", ST_RCPT, CL_5, kw_directory_reject,
          RC_MAILBOX_NOT_FOUND),
    WORDS("text_access_denied", ST_ANY, CL_45, kw_access_denied, RC_BLOCKED),
    WORDS("text_full", ST_RCPT, CL_45, kw_full, RC_MAILBOX_FULL),
    WORDS("text_disabled", ST_RCPT, CL_5, kw_disabled, RC_MAILBOX_DISABLED),
    WORDS("text_not_found", ST_RCPT, CL_5, kw_not_found, RC_MAILBOX_NOT_FOUND),
    {"esc_unavailable", ST_ANY, CL_4, 0, 7, 1, 1, kw_unavailable, RC_TEMPORARY},
    /* RFC 3463 X.7.1 (delivery not authorized) with nothing but a plea
     * to retry is how greylisting milters defer a new triplet. */
    {"esc_greylist_retry", ST_MAIL | ST_RCPT, CL_4, 0, 7, 1, 1, kw_retry_later,
     RC_GREYLISTED},

    /* RFC 7504 defines 521 (the host takes no mail) and 556 (the domain
     * takes none, as for an RFC 7505 null MX). At MAIL either would be
     * about our sender, so the MAIL default decides there. */
    CODE("code_556_null_mx", ST_RCPT, 556, RC_NO_MAIL_SERVICE),
    CODE("code_521_no_mail", ST_GREET | ST_EHLO | ST_RCPT, 521,
         RC_NO_MAIL_SERVICE),

    /* Enhanced codes specific enough to decide (RFC 3463, RFC 7505). */
    ESC("esc_bad_mailbox", ST_RCPT, CL_5, 1, 1, 1, RC_MAILBOX_NOT_FOUND),
    ESC("esc_mailbox_moved", ST_RCPT, CL_5, 1, 6, 6, RC_MAILBOX_NOT_FOUND),
    /* X.1.2, bad destination system: the host does not take mail for the
     * domain (Gmail: "We weren't able to find the recipient domain"). */
    ESC("esc_bad_domain", ST_RCPT, CL_5, 1, 2, 2, RC_RELAY_DENIED),
    {"esc_exchange_not_found", ST_RCPT, CL_5, 550, 1, 10, 10, NULL,
     RC_MAILBOX_NOT_FOUND},
    ESC("esc_bad_sender", ST_ANY, CL_45, 1, 7, 8, RC_SENDER_REJECTED),
    ESC("esc_sender_null_mx", ST_ANY, CL_45, 7, 27, 27, RC_SENDER_REJECTED),
    ESC("esc_mailbox_disabled", ST_RCPT, CL_5, 2, 1, 1, RC_MAILBOX_DISABLED),
    ESC("esc_mailbox_full", ST_RCPT, CL_45, 2, 2, 2, RC_MAILBOX_FULL),
    ESC("esc_too_many_rcpt", ST_ANY, CL_45, 5, 3, 3, RC_RATE_LIMITED),
    /* Exchange Online throttles new senders with 4.7.500-699 and calls
     * it graylisting. */
    ESC("esc_exchange_graylist", ST_ANY, CL_4, 7, 500, 699, RC_GREYLISTED),
    /* RFC 3207 uses 530 to require STARTTLS. Replies that require
     * authentication matched the blocked row above. */
    CODE("code_530_starttls", ST_ANY, 530, RC_TLS_REQUIRED),

    WORDS("text_policy", ST_ANY, CL_45, kw_policy, RC_BLOCKED),

    /* Enhanced-code subjects (RFC 3463 section 3): X.7 is security or
     * policy, X.5 is protocol. X.5.0 is too generic to decide. */
    ESC("esc_policy", ST_ANY, CL_5, 7, 0, 999, RC_BLOCKED),
    ESC("esc_protocol", ST_ANY, CL_45, 5, 1, 999, RC_PROTOCOL_ERROR),

    /* Basic codes (RFC 5321 section 4.2.3). */
    CODE("code_421", ST_ANY, 421, RC_SERVICE_CLOSING),
    CODE("code_500", ST_ANY, 500, RC_PROTOCOL_ERROR),
    CODE("code_501", ST_ANY, 501, RC_PROTOCOL_ERROR),
    CODE("code_502", ST_ANY, 502, RC_PROTOCOL_ERROR),
    CODE("code_503", ST_ANY, 503, RC_PROTOCOL_ERROR),
    CODE("code_504", ST_ANY, 504, RC_PROTOCOL_ERROR),
    CODE("code_555", ST_ANY, 555, RC_PROTOCOL_ERROR),
    CODE("code_552_storage", ST_RCPT, 552, RC_MAILBOX_FULL),

    /* Defaults by stage. A 5xx before RCPT rejects the session or the
     * null sender, never a mailbox. */
    {"default_4xx", ST_ANY, CL_4, 0, ESC_NONE, 0, 0, NULL, RC_TEMPORARY},
    {"default_5xx_session", ST_GREET | ST_EHLO, CL_5, 0, ESC_NONE, 0, 0, NULL,
     RC_BLOCKED},
    {"default_5xx_mail", ST_MAIL, CL_5, 0, ESC_NONE, 0, 0, NULL,
     RC_SENDER_REJECTED},
    {"default_5xx_rcpt", ST_RCPT, CL_5, 0, ESC_NONE, 0, 0, NULL, RC_PERMANENT},
};

struct enhanced {
    bool present;
    int cls, subject, detail;
};

/* Parses one dot-separated number of at most three digits. */
static const char *
parse_part(const char *s, int *out)
{
    int n = 0;
    int digits = 0;

    while (isdigit((unsigned char)*s) && digits < 3) {
        n = n * 10 + (*s - '0');
        s++;
        digits++;
    }
    *out = n;
    return digits > 0 ? s : NULL;
}

/* Parses "5.1.1". An enhanced code whose class differs from the first
 * digit of the reply code contradicts it, so it is ignored. */
static struct enhanced
parse_enhanced(const char *esc, int code)
{
    struct enhanced e = {false, 0, 0, 0};
    const char *p = esc;

    p = parse_part(p, &e.cls);
    if (p == NULL || *p != '.')
        return e;
    p = parse_part(p + 1, &e.subject);
    if (p == NULL || *p != '.')
        return e;
    p = parse_part(p + 1, &e.detail);
    if (p == NULL || *p != '\0')
        return e;
    e.present = e.cls == code / 100;
    return e;
}

/* Finds word in text, case-insensitively, starting at a word start. */
static bool
text_has_word(const char *text, const char *word)
{
    size_t wlen = strlen(word);

    for (size_t i = 0; text[i] != '\0'; i++) {
        if (i > 0 && isalnum((unsigned char)text[i - 1]))
            continue;
        if (strncasecmp(text + i, word, wlen) == 0)
            return true;
    }
    return false;
}

static bool
text_has_any(const char *text, const char *const *words)
{
    for (size_t i = 0; words[i] != NULL; i++) {
        if (text_has_word(text, words[i]))
            return true;
    }
    return false;
}

static bool
rule_matches(const struct rule *r, unsigned stage_bit, unsigned class_bit,
             const struct smtp_reply *reply, const struct enhanced *esc)
{
    if ((r->stages & stage_bit) == 0 || (r->classes & class_bit) == 0)
        return false;
    if (r->code != 0 && r->code != reply->code)
        return false;
    if (r->esc_subject != ESC_NONE) {
        if (!esc->present || esc->subject != r->esc_subject)
            return false;
        if (esc->detail < r->esc_lo || esc->detail > r->esc_hi)
            return false;
    }
    if (r->words != NULL && !text_has_any(reply->text, r->words))
        return false;
    return true;
}

static void
fill(struct classification *out, enum reply_category cat, int code,
     const char *rule)
{
    const struct category_info *info = &categories[cat];

    out->category = cat;
    out->reason = info->reason;
    out->status = verdict_reason_status(info->reason);
    out->retry = info->retry == RETRY_ALWAYS ||
                 (info->retry == RETRY_ON_4XX && code / 100 == 4);
    out->rule = rule;
}

void
classify_reply(enum smtp_stage stage, const struct smtp_reply *reply,
               struct classification *out)
{
    unsigned stage_bit = STAGE_BIT(stage);
    int cls = reply->code / 100;
    struct enhanced esc;

    if (reply->code < 200 || reply->code > 599 || cls == 3) {
        /* SMTP uses no 1xx replies, and none of our commands expects a
         * 3xx (only DATA does, which the probe never sends). */
        fill(out, RC_PROTOCOL_ERROR, reply->code, "unexpected_code");
        return;
    }
    if (cls == 2) {
        fill(out, RC_ACCEPTED, reply->code, "code_2xx");
        return;
    }

    esc = parse_enhanced(reply->enhanced, reply->code);
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const struct rule *r = &rules[i];

        if (rule_matches(r, stage_bit, cls == 4 ? CL_4 : CL_5, reply, &esc)) {
            fill(out, r->category, reply->code, r->name);
            return;
        }
    }
    /* Unreachable while the default rows cover every stage and class. */
    fill(out, cls == 4 ? RC_TEMPORARY : RC_PERMANENT, reply->code, "fallback");
}

const char *
reply_category_str(enum reply_category c)
{
    if ((unsigned)c >= RC_NCATEGORIES)
        return "unknown";
    return categories[c].name;
}

bool
reply_category_parse(const char *name, enum reply_category *out)
{
    for (int i = 0; i < RC_NCATEGORIES; i++) {
        if (strcmp(name, categories[i].name) == 0) {
            *out = (enum reply_category)i;
            return true;
        }
    }
    return false;
}
