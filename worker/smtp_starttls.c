/* SPDX-License-Identifier: MIT */
/*
 * STARTTLS for an SMTP session (RFC 3207): telling a refusal that asks for
 * TLS from other refusals, sending STARTTLS, handling its reply and
 * forgetting what the server sent in plaintext once the handshake is done.
 * The handshake itself belongs to the transport.
 */
#include "log.h"
#include "smtp_session_internal.h"

/* Whether r refuses to go on until TLS is on: RFC 3207 uses 530 5.7.0,
 * and the classifier also matches the usual texts. */
bool
smtp_starttls_refusal(const struct smtp_session *s, const struct smtp_reply *r)
{
    struct classification cls;

    classify_reply(smtp_session_state_stage(s->state), r, &cls);
    return cls.category == RC_TLS_REQUIRED;
}

/*
 * Whether r is a TLS refusal and STARTTLS can still be tried: EHLO offered
 * it, TLS is not on yet and the transport has TLS. Otherwise the refusal
 * is an answer like any other, which the classifier makes
 * unknown/protocol_error.
 */
bool
smtp_starttls_required(const struct smtp_session *s, const struct smtp_reply *r)
{
    if (s->tls || !s->starttls || s->t.starttls == NULL)
        return false;
    return smtp_starttls_refusal(s, r);
}

/* Sends STARTTLS. No command follows it before the handshake, because
 * anything sent behind it would go out in plaintext. */
void
smtp_starttls_start(struct smtp_session *s)
{
    enum status st;

    log_info(&s->lctx, "ev=starttls why=required state=%s",
             smtp_state_str(s->state));
    smtp_session_set_state(s, SMTP_ST_STARTTLS);
    st = smtp_session_send_command(s, VERB_STARTTLS, "");
    if (st != ST_OK)
        smtp_session_send_failed(s, st);
}

/* RFC 3207 section 4.2: everything learned from the server before TLS
 * may have been forged, so it is forgotten, and EHLO is sent again. */
void
smtp_starttls_forget_before_tls(struct smtp_session *s)
{
    s->tls = true;
    s->tls_needed = false;
    s->starttls = false;
    s->pipelining = false;
    s->smtputf8 = false;
    s->use_sender = false;
    s->awaiting = 0;
    smtp_reply_parser_init(&s->parser);
}

/*
 * RFC 3207: a 2xx (220) reply starts the handshake at once.
 * Other replies (454 "TLS not available due to temporary reason", 501)
 * make this host useless for addresses that need TLS, so the next address
 * is tried and the reply is kept as the failure. It is classified at the
 * EHLO stage, which says nothing about a mailbox.
 */
void
smtp_starttls_on_starttls(struct smtp_session *s, const struct smtp_reply *r)
{
    enum status st;

    if (r->code / 100 != 2) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    smtp_session_set_state(s, SMTP_ST_TLS);
    smtp_reply_parser_init(&s->parser);
    st = s->t.starttls(s->t.ctx, s->lctx.mx);
    if (st != ST_OK) {
        log_warn(&s->lctx, "ev=tls_failed st=%s why=not_started",
                 status_str(st));
        smtp_outcome_fail_plain(s, VR_PROTOCOL_ERROR,
                                "TLS could not be started");
        smtp_session_try_next_address(s);
    }
}
