/* SPDX-License-Identifier: MIT */
/*
 * The mail transaction of an SMTP session: the recipient list built at
 * creation, MAIL FROM, RCPT TO in batches when the server offers PIPELINING
 * (RFC 2920), RSET after "too many recipients" and one outcome per address.
 * After an anti-harvesting drop it spreads the addresses left over smaller
 * connections to the same address.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_session_internal.h"
#include "xalloc.h"

/* ---- anti-harvesting reconnects ---- */

/*
 * Whether a connection lost among the RCPTs looks like an anti-harvesting
 * limit: some RCPTs were answered on it, so smaller sessions make
 * progress. A loss before any answer says nothing of the kind.
 */
bool
smtp_rcpt_harvest_suspected(const struct smtp_session *s)
{
    return s->state == SMTP_ST_RCPT && s->conn_replies > 0 &&
           smtp_rcpt_any_undecided(s, false);
}

/*
 * Connects again to the same address for the undecided addresses, with
 * at most half the RCPTs this connection carried. The answers already
 * read stay. Each such connection decided at least one address, so the
 * reconnects end.
 */
void
smtp_rcpt_reconnect_smaller(struct smtp_session *s, const char *why)
{
    size_t cap = s->conn_sent / 2;

    /* NOTE: the cap lives in this session only; the next item for the
     * same MX starts uncapped and meets the drop again. The reconnects
     * take no new per-MX rate token either. */
    s->rcpt_cap = cap > 0 ? cap : 1;
    log_warn(&s->lctx,
             "ev=harvest_limit state=%s why=\"%s\" answered=%zu sent=%zu "
             "rcpt_cap=%zu",
             smtp_state_str(s->state), why, s->conn_replies, s->conn_sent,
             s->rcpt_cap);
    s->t.close(s->t.ctx);
    smtp_session_connect_current(s);
}

/* Ends this connection with QUIT and opens a new one to the same
 * address for the addresses left, which stay undecided. */
static void
quit_to_reconnect(struct smtp_session *s)
{
    enum status st;

    log_debug(&s->lctx, "ev=rcpt_cap_reached rcpt_cap=%zu next=reconnect",
             s->rcpt_cap);
    s->reconnect = true;
    smtp_session_set_state(s, SMTP_ST_QUIT);
    s->awaiting = 0;
    st = smtp_session_send_command(s, VERB_QUIT, "");
    if (st != ST_OK) {
        s->t.close(s->t.ctx);
        smtp_session_connect_current(s);
    }
}

/* ---- the transaction ---- */

static bool
text_has_phrase(const char *text, const char *phrase)
{
    size_t plen = strlen(phrase);

    for (const char *p = text; *p != '\0'; p++) {
        if (strncasecmp(p, phrase, plen) == 0)
            return true;
    }
    return false;
}

/*
 * Addresses whose local part needs SMTPUTF8 cannot be sent to a server that
 * does not offer it (RFC 6531 section 3.4), so they are decided here,
 * unasked. The reason is protocol_error: the dialogue this server offers
 * cannot carry the address, which says nothing about the mailbox (so not
 * undeliverable), is no policy against us (not blocked) and does not pass
 * with time (not temporary_failure, which would be retried in vain).
 */
static void
decide_utf8_without_support(struct smtp_session *s)
{
    struct smtp_outcome o;

    if (s->smtputf8)
        return;
    smtp_outcome_plain(s, VR_PROTOCOL_ERROR,
                       "not sent: the local part is UTF-8 and the server does "
                       "not offer SMTPUTF8",
                       &o);
    o.decided = true;
    for (size_t i = 0; i < s->n_rcpts; i++) {
        struct rcpt *rc = &s->rcpts[i];

        if (rc->decided || !rc->utf8)
            continue;
        rc->decided = true;
        if (rc->job >= 0)
            s->outcomes[rc->job] = o;
    }
}

bool
smtp_rcpt_any_undecided(const struct smtp_session *s, bool utf8_only)
{
    for (size_t i = 0; i < s->n_rcpts; i++) {
        if (!s->rcpts[i].decided && (!utf8_only || s->rcpts[i].utf8))
            return true;
    }
    return false;
}

void
smtp_rcpt_start_mail(struct smtp_session *s)
{
    enum smtp_verb verb = VERB_MAIL;
    const char *sender = s->use_sender ? s->cfg->sender : "";
    enum status st;

    decide_utf8_without_support(s);
    if (!smtp_rcpt_any_undecided(s, false)) {
        smtp_session_quit(s);
        return;
    }
    if (s->smtputf8 && smtp_rcpt_any_undecided(s, true))
        verb = VERB_MAIL_UTF8;
    smtp_session_set_state(s, SMTP_ST_MAIL);
    st = smtp_session_send_command(s, verb, sender);
    if (st != ST_OK)
        smtp_session_send_failed(s, st);
}

/* How many RCPTs the next batch may carry: a pipelining batch, or one,
 * and never past the per-connection cap. */
static size_t
rcpt_batch_limit(const struct smtp_session *s)
{
    size_t limit = s->pipelining ? RCPT_BATCH_MAX : 1;
    size_t left;

    if (s->rcpt_cap == 0)
        return limit;
    left = s->conn_sent < s->rcpt_cap ? s->rcpt_cap - s->conn_sent : 0;
    return left < limit ? left : limit;
}

/* Sends the next batch of RCPT commands; QUIT when every address is
 * decided, or a new connection when this one reached its cap. */
static void
send_rcpt_batch(struct smtp_session *s)
{
    size_t limit = rcpt_batch_limit(s);
    size_t i = s->rcpt_next;
    enum status st;

    s->batch_n = 0;
    s->batch_got = 0;
    for (; i < s->n_rcpts && s->batch_n < limit; i++) {
        if (s->rcpts[i].decided)
            continue;
        st = smtp_session_send_command(s, VERB_RCPT, s->rcpts[i].addr);
        if (st != ST_OK) {
            smtp_session_send_failed(s, st);
            return;
        }
        s->batch[s->batch_n++] = i;
        s->conn_sent++;
    }
    s->rcpt_next = i;
    if (s->batch_n > 0)
        return;
    if (limit == 0 && smtp_rcpt_any_undecided(s, false))
        quit_to_reconnect(s);
    else
        smtp_session_quit(s);
}

void
smtp_rcpt_on_mail(struct smtp_session *s, const struct smtp_reply *r)
{
    int cls = r->code / 100;
    enum status st;

    if (cls == 2) {
        s->txn_accepted = 0;
        s->txn_full = false;
        s->rcpt_next = 0;
        smtp_session_set_state(s, SMTP_ST_RCPT);
        send_rcpt_batch(s);
        return;
    }
    if (r->code == 421) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    if (smtp_starttls_required(s, r)) {
        smtp_starttls_start(s);
        return;
    }
    if (cls == 5 && !s->use_sender && s->cfg->sender != NULL &&
        s->cfg->sender[0] != '\0' && !smtp_starttls_refusal(s, r)) {
        /* Some servers refuse the null sender. A failed MAIL starts no
         * transaction (RFC 5321 section 4.1.1.2), so no RSET is needed. */
        s->use_sender = true;
        smtp_session_set_state(s, SMTP_ST_MAIL);
        st = smtp_session_send_command(
            s,
            s->smtputf8 && smtp_rcpt_any_undecided(s, true) ? VERB_MAIL_UTF8
                                                            : VERB_MAIL,
            s->cfg->sender);
        if (st != ST_OK)
            smtp_session_send_failed(s, st);
        return;
    }
    if (cls == 4 || cls == 5) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_quit(s);
        return;
    }
    smtp_session_protocol_error(s, "MAIL reply is not 2xx, 4xx or 5xx");
}

/*
 * RFC 5321 section 4.5.3.1.10: a server may limit the recipients of one
 * transaction with 452 (older ones with 552); the rest go in a new one.
 */
static bool
too_many_recipients(const struct smtp_reply *r)
{
    if (r->code != 452 && r->code != 552)
        return false;
    if (r->enhanced[0] != '\0' && strcmp(r->enhanced + 1, ".5.3") == 0)
        return true;
    return text_has_phrase(r->text, "too many recipients");
}

static void
decide_rcpt(struct smtp_session *s, struct rcpt *rc, const struct smtp_reply *r)
{
    int cls = r->code / 100;

    rc->decided = true;
    if (rc->job >= 0) {
        smtp_outcome_from_reply(s, r, &s->outcomes[rc->job]);
        return;
    }
    /* The random address: accepted means the server accepts anything. */
    if (cls == 2)
        s->catch_all = TRI_YES;
    else if (cls == 5)
        s->catch_all = TRI_NO;
    else
        s->catch_all = TRI_UNKNOWN;
    log_debug(&s->lctx, "ev=catch_all_test code=%d catch_all=%d", r->code,
              (int)s->catch_all);
}

void
smtp_rcpt_on_rcpt(struct smtp_session *s, const struct smtp_reply *r)
{
    struct rcpt *rc = &s->rcpts[s->batch[s->batch_got++]];

    if (r->code == 421) {
        /* The server is going away (RFC 5321 section 3.8): the rest are
         * asked of the next address, or later on the retry schedule. */
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    s->conn_replies++;
    if (smtp_starttls_required(s, r)) {
        s->tls_needed = true; /* rc stays undecided until TLS is on */
    } else if (too_many_recipients(r) &&
               (s->txn_accepted > 0 || s->txn_full)) {
        s->txn_full = true; /* rc stays undecided for the next round */
    } else {
        decide_rcpt(s, rc, r);
        if (r->code / 100 == 2)
            s->txn_accepted++;
    }
    if (s->batch_got < s->batch_n) {
        s->t.set_timer(s->t.ctx, s->cfg->rcpt_timeout);
        return;
    }
    /* STARTTLS waits for an RSET too: TLS would discard the transaction
     * anyway (RFC 3207 section 4.2), and a server may refuse STARTTLS
     * inside one. */
    if (s->txn_full || s->tls_needed) {
        enum status st;

        smtp_session_set_state(s, SMTP_ST_RSET);
        st = smtp_session_send_command(s, VERB_RSET, "");
        if (st != ST_OK)
            smtp_session_send_failed(s, st);
        return;
    }
    s->t.set_timer(s->t.ctx, s->cfg->rcpt_timeout);
    send_rcpt_batch(s);
}

void
smtp_rcpt_on_rset(struct smtp_session *s, const struct smtp_reply *r)
{
    if (r->code / 100 == 2 && s->tls_needed) {
        smtp_starttls_start(s);
        return;
    }
    if (r->code / 100 == 2) {
        smtp_rcpt_start_mail(s);
        return;
    }
    if (r->code == 421) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    smtp_outcome_fail_reply(s, r);
    smtp_session_quit(s);
}

/* ---- the recipient list ---- */

/* Whether addr can be sent: no control character and in the item's
 * domain (a probe item never mixes domains). */
bool
smtp_rcpt_address_ok(const char *addr, const char *domain)
{
    const char *at;

    if (addr == NULL || addr[0] == '\0' || smtp_session_has_control_char(addr))
        return false;
    at = strrchr(addr, '@');
    return at != NULL && at != addr && strcasecmp(at + 1, domain) == 0;
}

static bool
has_high_bit(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p >= 0x80)
            return true;
    }
    return false;
}

void
smtp_rcpt_add(struct smtp_session *s, const char *addr, long job)
{
    struct rcpt *rc = &s->rcpts[s->n_rcpts++];

    rc->addr = addr;
    rc->job = job;
    rc->decided = false;
    rc->utf8 = has_high_bit(addr);
}

void
smtp_rcpt_reject_job(struct smtp_session *s, size_t job)
{
    struct smtp_outcome *o = &s->outcomes[job];

    log_error(&s->lctx,
              "ev=invalid_address job_index=%zu "
              "why=control_character_or_other_domain",
              job);
    memset(o, 0, sizeof *o);
    o->decided = true;
    o->cls.status = VS_UNDELIVERABLE;
    o->cls.reason = VR_SYNTAX;
}

void
smtp_rcpt_build_probe(struct smtp_session *s)
{
    const struct probe_item *item = s->item;
    size_t len;

    if (item->catchall_local == NULL)
        return;
    len = strlen(item->catchall_local) + strlen(item->domain) + 2;
    s->probe_addr = xmalloc(len);
    if (snprintf(s->probe_addr, len, "%s@%s", item->catchall_local,
                 item->domain) < 0 ||
        !smtp_rcpt_address_ok(s->probe_addr, item->domain)) {
        log_warn(&s->lctx, "ev=catch_all_test_skipped why=invalid_local");
        return;
    }
    smtp_rcpt_add(s, s->probe_addr, -1);
}
