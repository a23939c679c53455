/* SPDX-License-Identifier: MIT */
/*
 * Outcome recording for an SMTP session. It keeps the failure for the
 * addresses still undecided and builds outcomes from a reply or from a
 * failure without one. At the end it decides the rest and reports accepted
 * addresses of a catch-all domain as risky. It sends nothing and never
 * changes the state.
 */
#include <stdio.h>
#include <string.h>

#include "smtp_session_internal.h"

static void
set_text(char *dst, size_t size, const char *text)
{
    int n = snprintf(dst, size, "%s", text);

    /* A cut text is still useful evidence; only a failed call is not. */
    if (n < 0)
        dst[0] = '\0';
}

/*
 * Whether a failure without a reply is worth another session later: a
 * host that could not be reached, went silent or dropped the connection
 * may well answer in a few minutes (RFC 5321 section 4.5.4.1 has MTAs
 * retry such failures for days). A protocol error will not go away.
 */
static bool
reason_is_transient(enum verdict_reason reason)
{
    return reason == VR_MX_UNREACHABLE || reason == VR_TIMEOUT ||
           reason == VR_TEMPORARY_FAILURE;
}

/* Fills o with an outcome that came without a reply (code 0). */
void
smtp_outcome_plain(const struct smtp_session *s, enum verdict_reason reason,
                   const char *text, struct smtp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->has_smtp = true;
    o->smtp.stage = smtp_session_state_stage(s->state);
    o->smtp.code = 0;
    set_text(o->smtp.text, sizeof o->smtp.text, text);
    o->cls.status = verdict_reason_status(reason);
    o->cls.reason = reason;
    o->cls.retry = reason_is_transient(reason);
    o->mx = s->lctx.mx;
    o->ip = s->lctx.ip;
}

/* Records a failure without a reply for the addresses still undecided. */
void
smtp_outcome_fail_plain(struct smtp_session *s, enum verdict_reason reason,
                        const char *text)
{
    smtp_outcome_plain(s, reason, text, &s->failure);
}

void
smtp_outcome_from_reply(const struct smtp_session *s,
                        const struct smtp_reply *r, struct smtp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->decided = true;
    o->has_smtp = true;
    o->smtp.stage = smtp_session_state_stage(s->state);
    o->smtp.code = r->code;
    set_text(o->smtp.enhanced, sizeof o->smtp.enhanced, r->enhanced);
    set_text(o->smtp.text, sizeof o->smtp.text, r->text);
    classify_reply(o->smtp.stage, r, &o->cls);
    o->mx = s->lctx.mx;
    o->ip = s->lctx.ip;
}

void
smtp_outcome_fail_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    smtp_outcome_from_reply(s, r, &s->failure);
    s->failure.decided = false;
}

/* Gives every undecided address the recorded failure. */
void
smtp_outcome_decide_rest(struct smtp_session *s)
{
    for (size_t i = 0; i < s->n_rcpts; i++) {
        struct rcpt *rc = &s->rcpts[i];

        if (rc->decided)
            continue;
        rc->decided = true;
        if (rc->job < 0)
            continue; /* the catch-all flag stays unknown */
        s->outcomes[rc->job] = s->failure;
        s->outcomes[rc->job].decided = true;
    }
}

/*
 * An accepted address proves nothing on a domain that accepts every
 * address, so it becomes risky/catch_all; the real reply is kept. A
 * rejection stays a rejection.
 */
void
smtp_outcome_apply_catch_all(struct smtp_session *s)
{
    bool catch_all = s->item->catch_all == TRI_YES || s->catch_all == TRI_YES;

    if (!catch_all)
        return;
    for (size_t i = 0; i < s->item->n_jobs; i++) {
        struct smtp_outcome *o = &s->outcomes[i];

        if (o->cls.status != VS_DELIVERABLE)
            continue;
        o->cls.status = VS_RISKY;
        o->cls.reason = VR_CATCH_ALL;
    }
}
