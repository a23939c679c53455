/* SPDX-License-Identifier: MIT */
/*
 * Turns one parsed SMTP reply, and the stage of the session that got it,
 * into a reply category, the public status and reason, and a retry hint.
 * The decision is a pure function driven by one ordered rule table; this
 * module does no I/O and keeps no state. It does not decide catch-all
 * domains or retry schedules: callers combine its answers for that.
 */
#ifndef MXPROBE_CLASSIFY_H
#define MXPROBE_CLASSIFY_H

#include <stdbool.h>

#include "smtp_reply.h"
#include "verdict.h"

/* What a reply means for the probe, finer than the public reasons. */
enum reply_category {
    RC_ACCEPTED,          /* 2xx */
    RC_MAILBOX_NOT_FOUND, /* the address has no mailbox here */
    RC_MAILBOX_DISABLED,  /* the mailbox exists but is disabled */
    RC_MAILBOX_FULL,      /* over quota, 4xx or 5xx */
    RC_BLOCKED,           /* our IP, HELO or session refused by policy */
    RC_RELAY_DENIED,      /* the host does not take mail for the domain */
    RC_RATE_LIMITED,      /* too many connections, messages or recipients */
    RC_GREYLISTED,        /* deferred on purpose, retry later */
    RC_SENDER_REJECTED,   /* our envelope sender was refused */
    RC_PROTOCOL_ERROR,    /* our command was refused as bad syntax or order */
    RC_TLS_REQUIRED,      /* the server wants STARTTLS first */
    RC_SERVICE_CLOSING,   /* 421: the server is closing the session */
    RC_NO_MAIL_SERVICE,   /* RFC 7504/7505: host or domain takes no mail */
    RC_TEMPORARY,         /* other 4xx */
    RC_PERMANENT,         /* other 5xx */
    RC_NCATEGORIES
};

struct classification {
    enum reply_category category;
    enum verdict_status status;
    enum verdict_reason reason;
    bool retry;       /* worth retrying later: greylisting, 4xx, 421 */
    const char *rule; /* static name of the deciding table row */
};

/*
 * Classifies reply, which the server sent at stage. Both arguments are
 * borrowed; *out is overwritten and its rule points at static storage.
 * Mailbox categories come only from RCPT replies: a refusal at greeting,
 * EHLO or MAIL tells nothing about the mailbox. Never fails: a 3xx or a
 * code outside 200..599 classifies as RC_PROTOCOL_ERROR.
 */
void classify_reply(enum smtp_stage stage, const struct smtp_reply *reply,
                    struct classification *out);

/* Returns the name of c ("mailbox_not_found", ...), "unknown" if invalid. */
const char *reply_category_str(enum reply_category c);

/* Parses a category name; returns false when name is not one. */
bool reply_category_parse(const char *name, enum reply_category *out);

#endif
