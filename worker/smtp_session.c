/* SPDX-License-Identifier: MIT */
/*
 * The SMTP client state machine of the worker. smtp_session_set_state() is
 * the only writer of the state, checks each move against a table and
 * re-arms the state's timeout; smtp_on_reply() is the only dispatcher, with
 * one handler per state. Connection-level failures (connect errors, a 4xx
 * greeting, 421) move on to the next address of the item; everything else
 * ends in an outcome per address. Sockets and timers belong to the
 * transport. The mail transaction is in smtp_rcpt.c, STARTTLS in
 * smtp_starttls.c and outcome recording in smtp_outcome.c.
 */
#include "smtp_session.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_reply.h"
#include "smtp_session_internal.h"
#include "xalloc.h"

/* RFC 5321 section 4.5.3.1.4: a command line is at most 512 octets with
 * its CRLF. */
#define CMD_LINE_MAX 512

#define STATE_BIT(st) (1u << (st))

static const char *const state_names[] = {
    [SMTP_ST_IDLE] = "idle",         [SMTP_ST_CONNECTING] = "connecting",
    [SMTP_ST_GREETING] = "greeting", [SMTP_ST_EHLO] = "ehlo",
    [SMTP_ST_HELO] = "helo",         [SMTP_ST_MAIL] = "mail",
    [SMTP_ST_RCPT] = "rcpt",         [SMTP_ST_RSET] = "rset",
    [SMTP_ST_QUIT] = "quit",         [SMTP_ST_DONE] = "done",
    [SMTP_ST_STARTTLS] = "starttls", [SMTP_ST_TLS] = "tls",
};

_Static_assert(sizeof state_names / sizeof state_names[0] == SMTP_ST_NSTATES,
               "state_names must name every state");
_Static_assert(SMTP_ST_NSTATES <= 32, "allowed_next is a 32-bit mask");

/* Moves every state may make. Any state before QUIT may go back to
 * CONNECTING (next address) or straight to DONE (a fatal failure). */
#define ST_ANY_FAIL (STATE_BIT(SMTP_ST_CONNECTING) | STATE_BIT(SMTP_ST_DONE))

static const unsigned allowed_next[SMTP_ST_NSTATES] = {
    [SMTP_ST_IDLE] = ST_ANY_FAIL,
    [SMTP_ST_CONNECTING] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_GREETING),
    [SMTP_ST_GREETING] =
        ST_ANY_FAIL | STATE_BIT(SMTP_ST_EHLO) | STATE_BIT(SMTP_ST_QUIT),
    [SMTP_ST_EHLO] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_HELO) |
                     STATE_BIT(SMTP_ST_MAIL) | STATE_BIT(SMTP_ST_QUIT),
    [SMTP_ST_HELO] =
        ST_ANY_FAIL | STATE_BIT(SMTP_ST_MAIL) | STATE_BIT(SMTP_ST_QUIT),
    [SMTP_ST_MAIL] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_MAIL) |
                     STATE_BIT(SMTP_ST_RCPT) | STATE_BIT(SMTP_ST_QUIT) |
                     STATE_BIT(SMTP_ST_STARTTLS),
    [SMTP_ST_RCPT] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_RSET) |
                     STATE_BIT(SMTP_ST_QUIT) | STATE_BIT(SMTP_ST_STARTTLS),
    [SMTP_ST_RSET] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_MAIL) |
                     STATE_BIT(SMTP_ST_QUIT) | STATE_BIT(SMTP_ST_STARTTLS),
    [SMTP_ST_STARTTLS] =
        ST_ANY_FAIL | STATE_BIT(SMTP_ST_TLS) | STATE_BIT(SMTP_ST_QUIT),
    /* After the handshake the dialogue starts over with EHLO. */
    [SMTP_ST_TLS] = ST_ANY_FAIL | STATE_BIT(SMTP_ST_EHLO),
    /* CONNECTING: a new connection to the same address for the rest,
     * after a server that limits recipients per connection. */
    [SMTP_ST_QUIT] = STATE_BIT(SMTP_ST_DONE) | STATE_BIT(SMTP_ST_CONNECTING),
    [SMTP_ST_DONE] = 0,
};

struct verb_form {
    const char *head;
    const char *tail;
};

static const struct verb_form verb_forms[] = {
    [VERB_EHLO] = {"EHLO ", ""},
    [VERB_HELO] = {"HELO ", ""},
    [VERB_MAIL] = {"MAIL FROM:<", ">"},
    [VERB_MAIL_UTF8] = {"MAIL FROM:<", "> SMTPUTF8"},
    [VERB_RCPT] = {"RCPT TO:<", ">"},
    [VERB_RSET] = {"RSET", ""},
    [VERB_QUIT] = {"QUIT", ""},
    [VERB_STARTTLS] = {"STARTTLS", ""},
};

_Static_assert(sizeof verb_forms / sizeof verb_forms[0] == VERB_NVERBS,
               "verb_forms must spell every verb");

static void on_lost(struct smtp_session *s, const char *why);

const char *
smtp_state_str(enum smtp_state st)
{
    if ((unsigned)st >= SMTP_ST_NSTATES)
        return "invalid";
    return state_names[st];
}

static double
state_timeout(const struct smtp_session *s, enum smtp_state st)
{
    switch (st) {
    case SMTP_ST_CONNECTING:
        return s->cfg->connect_timeout;
    case SMTP_ST_GREETING:
        return s->cfg->greeting_timeout;
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO:
    case SMTP_ST_STARTTLS:
        return s->cfg->ehlo_timeout;
    case SMTP_ST_TLS:
        /* The handshake sets up the connection, as connect does. */
        return s->cfg->connect_timeout;
    case SMTP_ST_MAIL:
    case SMTP_ST_RSET:
        return s->cfg->mail_timeout;
    case SMTP_ST_RCPT:
        return s->cfg->rcpt_timeout;
    case SMTP_ST_QUIT:
        return s->cfg->quit_timeout;
    case SMTP_ST_IDLE:
    case SMTP_ST_DONE:
        return 0;
    case SMTP_ST_NSTATES:
    default:
        break;
    }
    log_crit(&s->lctx, "ev=bad_state state=%d", (int)st);
    abort();
}

/* The stage a reply or failure in state st is reported under. */
enum smtp_stage
smtp_session_state_stage(enum smtp_state st)
{
    switch (st) {
    case SMTP_ST_IDLE:
    case SMTP_ST_CONNECTING:
        return SMTP_STAGE_CONNECT;
    case SMTP_ST_GREETING:
        return SMTP_STAGE_GREETING;
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO:
    case SMTP_ST_STARTTLS: /* TLS is part of setting up the session */
    case SMTP_ST_TLS:
        return SMTP_STAGE_EHLO;
    case SMTP_ST_MAIL:
    case SMTP_ST_RSET:
        return SMTP_STAGE_MAIL;
    case SMTP_ST_RCPT:
    case SMTP_ST_QUIT:
    case SMTP_ST_DONE:
    case SMTP_ST_NSTATES:
    default:
        return SMTP_STAGE_RCPT;
    }
}

/* The only writer of s->state. */
void
smtp_session_set_state(struct smtp_session *s, enum smtp_state next)
{
    if ((allowed_next[s->state] & STATE_BIT(next)) == 0) {
        log_crit(&s->lctx, "ev=bad_transition from=%s to=%s",
                 smtp_state_str(s->state), smtp_state_str(next));
        abort();
    }
    log_debug(&s->lctx, "ev=state from=%s to=%s", smtp_state_str(s->state),
              smtp_state_str(next));
    s->state = next;
    s->t.set_timer(s->t.ctx, state_timeout(s, next));
}

/* Ends the session: closes the connection and fires the callback. */
static void
finish(struct smtp_session *s)
{
    smtp_outcome_decide_rest(s);
    smtp_outcome_apply_catch_all(s);
    s->t.close(s->t.ctx);
    smtp_session_set_state(s, SMTP_ST_DONE);
    s->done(s, s->done_arg);
}

/* ---- sending ---- */

bool
smtp_session_has_control_char(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

/*
 * Sends one command. An argument with a control character (CR, LF or any
 * other) is refused, so no address or setting can smuggle in a second
 * command: ST_EINVAL.
 */
enum status
smtp_session_send_command(struct smtp_session *s, enum smtp_verb verb,
                          const char *arg)
{
    const struct verb_form *f = &verb_forms[verb];
    char line[CMD_LINE_MAX + 1];
    int n;

    if (smtp_session_has_control_char(arg)) {
        log_error(&s->lctx,
                  "ev=command_refused state=%s st=einval "
                  "why=control_character",
                  smtp_state_str(s->state));
        return ST_EINVAL;
    }
    n = snprintf(line, sizeof line, "%s%s%s\r\n", f->head, arg, f->tail);
    if (n < 0 || (size_t)n > CMD_LINE_MAX) {
        log_error(&s->lctx,
                  "ev=command_refused state=%s st=einval "
                  "why=line_too_long",
                  smtp_state_str(s->state));
        return ST_EINVAL;
    }
    if (log_enabled(LOG_LVL_DEBUG)) {
        char quoted[LOG_QUOTE_MAX];

        line[n - 2] = '\0';
        log_debug(&s->lctx, "ev=send line=%s",
                  log_quote(quoted, sizeof quoted, line));
        line[n - 2] = '\r';
    }
    s->awaiting++;
    return s->t.send(s->t.ctx, line, (size_t)n);
}

/* Handles a failed smtp_session_send_command(): a refused argument ends the
 * session, a transport error counts as a lost connection. */
void
smtp_session_send_failed(struct smtp_session *s, enum status st)
{
    if (st == ST_EINVAL) {
        smtp_outcome_fail_plain(
            s, VR_PROTOCOL_ERROR,
            "command not sent: its argument has a control character "
            "or is too long");
        finish(s);
        return;
    }
    /* A server that closes in the middle of a pipelined batch (an
     * anti-harvesting limit) makes our write fail while its answers to the
     * first commands may still wait in our receive queue. So while replies
     * are outstanding, keep reading: the transport reports the close after
     * the last byte, and that takes the lost-connection path with every
     * answer counted. The state's timeout bounds the wait. */
    if (s->awaiting > 1) {
        log_debug(&s->lctx, "ev=send_failed state=%s st=%s awaiting=%zu "
                  "next=read_rest", smtp_state_str(s->state), status_str(st),
                  s->awaiting);
        return;
    }
    on_lost(s, "sending a command failed");
}

/* Gives the undecided addresses the recorded failure and sends QUIT. */
void
smtp_session_quit(struct smtp_session *s)
{
    enum status st;

    smtp_outcome_decide_rest(s);
    smtp_session_set_state(s, SMTP_ST_QUIT);
    s->awaiting = 0;
    st = smtp_session_send_command(s, VERB_QUIT, "");
    if (st != ST_OK)
        finish(s);
}

/* ---- connections ---- */

static bool
address_valid(const struct smtp_session *s)
{
    return s->mx_idx < s->item->n_mx &&
           s->ip_idx < s->item->mx[s->mx_idx].n_ips;
}

/* Moves to the next address, host by host; false when none is left. */
static bool
advance_address(struct smtp_session *s)
{
    s->ip_idx++;
    while (s->mx_idx < s->item->n_mx &&
           s->ip_idx >= s->item->mx[s->mx_idx].n_ips) {
        s->mx_idx++;
        s->ip_idx = 0;
    }
    return address_valid(s);
}

void
smtp_session_connect_current(struct smtp_session *s)
{
    const struct mx_host *mx = &s->item->mx[s->mx_idx];

    s->lctx.mx = mx->name;
    s->lctx.ip = mx->ips[s->ip_idx];
    s->connects++;
    s->conn_gen++;
    smtp_reply_parser_init(&s->parser);
    s->awaiting = 0;
    s->pipelining = false;
    s->smtputf8 = false;
    s->starttls = false;
    s->tls = false;
    s->tls_needed = false;
    s->conn_sent = 0;
    s->conn_replies = 0;
    s->reconnect = false;
    smtp_session_set_state(s, SMTP_ST_CONNECTING);
    s->t.connect(s->t.ctx, mx->ips[s->ip_idx]);
}

/* Drops this connection and tries the next address, or ends the session
 * with the recorded failure when there is none. */
void
smtp_session_try_next_address(struct smtp_session *s)
{
    char quoted[LOG_QUOTE_MAX];

    log_warn(&s->lctx, "ev=address_failed state=%s code=%d text=%s",
             smtp_state_str(s->state), s->failure.smtp.code,
             log_quote(quoted, sizeof quoted, s->failure.smtp.text));
    s->t.close(s->t.ctx);
    if (!advance_address(s)) {
        finish(s);
        return;
    }
    smtp_session_connect_current(s);
}

/* The QUIT exchange is over (reply, close or timeout). */
static void
end_quit(struct smtp_session *s)
{
    if (!s->reconnect) {
        finish(s);
        return;
    }
    s->t.close(s->t.ctx);
    smtp_session_connect_current(s);
}

/* The connection went away in the middle of the dialogue. */
static void
on_lost(struct smtp_session *s, const char *why)
{
    if (smtp_rcpt_harvest_suspected(s)) {
        smtp_rcpt_reconnect_smaller(s, why);
        return;
    }
    if (s->state == SMTP_ST_GREETING) {
        smtp_outcome_fail_plain(s, VR_MX_UNREACHABLE, why);
    } else {
        smtp_outcome_fail_plain(s, VR_TEMPORARY_FAILURE, why);
    }
    smtp_session_try_next_address(s);
}

void
smtp_session_protocol_error(struct smtp_session *s, const char *why)
{
    log_warn(&s->lctx, "ev=protocol_error state=%s st=eproto why=%s",
             smtp_state_str(s->state), why);
    smtp_outcome_fail_plain(s, VR_PROTOCOL_ERROR, why);
    finish(s);
}

/* ---- commands of the dialogue ---- */

static bool
text_has_token(const char *text, const char *word)
{
    size_t wlen = strlen(word);
    const char *p = text;

    while (*p != '\0') {
        size_t len = strcspn(p, " ");

        if (len == wlen && strncasecmp(p, word, wlen) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

/* ---- one handler per state ---- */

static void
on_greeting(struct smtp_session *s, const struct smtp_reply *r)
{
    enum status st;

    switch (r->code / 100) {
    case 2:
        smtp_session_set_state(s, SMTP_ST_EHLO);
        st = smtp_session_send_command(s, VERB_EHLO, s->cfg->helo_name);
        if (st != ST_OK)
            smtp_session_send_failed(s, st);
        return;
    case 4:
        /* RFC 5321 section 3.1: a 4xx greeting (usually 421) means "not
         * now, here"; another host of the domain may answer. */
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    case 5:
        smtp_outcome_fail_reply(s, r);
        smtp_session_quit(s);
        return;
    default:
        smtp_session_protocol_error(s, "greeting is not 2xx, 4xx or 5xx");
        return;
    }
}

static void
on_ehlo(struct smtp_session *s, const struct smtp_reply *r)
{
    enum status st;

    if (r->code / 100 == 2) {
        s->pipelining = text_has_token(r->text, "PIPELINING");
        s->smtputf8 = text_has_token(r->text, "SMTPUTF8");
        s->starttls = text_has_token(r->text, "STARTTLS");
        smtp_rcpt_start_mail(s);
        return;
    }
    if (r->code == 421) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    if (r->code / 100 == 5) {
        /* RFC 5321 section 4.1.4: a server that does not know EHLO still
         * takes HELO. */
        smtp_session_set_state(s, SMTP_ST_HELO);
        st = smtp_session_send_command(s, VERB_HELO, s->cfg->helo_name);
        if (st != ST_OK)
            smtp_session_send_failed(s, st);
        return;
    }
    if (r->code / 100 == 4) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_quit(s);
        return;
    }
    smtp_session_protocol_error(s, "EHLO reply is not 2xx, 4xx or 5xx");
}

static void
on_helo(struct smtp_session *s, const struct smtp_reply *r)
{
    int cls = r->code / 100;

    if (cls == 2) {
        smtp_rcpt_start_mail(s);
        return;
    }
    if (r->code == 421) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_try_next_address(s);
        return;
    }
    if (cls == 4 || cls == 5) {
        smtp_outcome_fail_reply(s, r);
        smtp_session_quit(s);
        return;
    }
    smtp_session_protocol_error(s, "HELO reply is not 2xx, 4xx or 5xx");
}

/* The dispatcher: one reply, one handler. */
static void
smtp_on_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    if (s->awaiting == 0) {
        smtp_session_protocol_error(s, "reply without a command");
        return;
    }
    s->awaiting--;
    log_debug(&s->lctx, "ev=reply state=%s code=%d esc=%s",
              smtp_state_str(s->state), r->code,
              r->enhanced[0] != '\0' ? r->enhanced : "-");

    switch (s->state) {
    case SMTP_ST_GREETING:
        on_greeting(s, r);
        break;
    case SMTP_ST_EHLO:
        on_ehlo(s, r);
        break;
    case SMTP_ST_HELO:
        on_helo(s, r);
        break;
    case SMTP_ST_MAIL:
        smtp_rcpt_on_mail(s, r);
        break;
    case SMTP_ST_RCPT:
        smtp_rcpt_on_rcpt(s, r);
        break;
    case SMTP_ST_RSET:
        smtp_rcpt_on_rset(s, r);
        break;
    case SMTP_ST_STARTTLS:
        smtp_starttls_on_starttls(s, r);
        break;
    case SMTP_ST_TLS:
        /* smtp_session_on_data() drops input in this state. */
        smtp_session_protocol_error(s, "reply during the TLS handshake");
        break;
    case SMTP_ST_QUIT:
        end_quit(s);
        break;
    case SMTP_ST_IDLE:
    case SMTP_ST_CONNECTING:
    case SMTP_ST_DONE:
        smtp_session_protocol_error(s, "reply while not connected");
        break;
    case SMTP_ST_NSTATES:
    default:
        log_crit(&s->lctx, "ev=bad_state state=%d", (int)s->state);
        abort();
    }
}

/* ---- creation ---- */

struct smtp_session *
smtp_session_new(const struct probe_item *item,
                 const struct smtp_session_config *cfg,
                 const struct smtp_transport *t, const char *log_id,
                 smtp_session_done_fn *done, void *arg)
{
    struct smtp_session *s = xcalloc(1, sizeof *s);

    s->state = SMTP_ST_IDLE;
    s->item = item;
    s->cfg = cfg;
    s->t = *t;
    s->done = done;
    s->done_arg = arg;
    s->lctx.job = log_id;
    s->lctx.domain = item->domain;
    s->catch_all = TRI_UNKNOWN;
    s->rcpts = xcalloc(item->n_jobs + 1, sizeof *s->rcpts);
    s->outcomes = xcalloc(item->n_jobs + 1, sizeof *s->outcomes);

    smtp_rcpt_build_probe(s);
    for (size_t i = 0; i < item->n_jobs; i++) {
        if (smtp_rcpt_address_ok(item->jobs[i].address, item->domain))
            smtp_rcpt_add(s, item->jobs[i].address, (long)i);
        else
            smtp_rcpt_reject_job(s, i);
    }
    smtp_outcome_fail_plain(s, VR_MX_UNREACHABLE,
                            "the item lists no MX address");
    return s;
}

void
smtp_session_free(struct smtp_session *s)
{
    if (s == NULL)
        return;
    s->t.set_timer(s->t.ctx, 0);
    s->t.close(s->t.ctx);
    free(s->probe_addr);
    free(s->rcpts);
    free(s->outcomes);
    free(s);
}

void
smtp_session_start(struct smtp_session *s)
{
    assert(s->state == SMTP_ST_IDLE);

    s->mx_idx = 0;
    s->ip_idx = 0;
    if (!address_valid(s))
        (void)advance_address(s);
    if (!address_valid(s) || !smtp_rcpt_any_undecided(s, false)) {
        /* Nothing to connect to or nothing to ask: end on the next loop
         * turn, because the callback must not fire from here. */
        s->t.set_timer(s->t.ctx, 0.001);
        return;
    }
    smtp_session_connect_current(s);
}

/* ---- transport events ---- */

void
smtp_session_on_connected(struct smtp_session *s)
{
    if (s->state != SMTP_ST_CONNECTING)
        return;
    smtp_session_set_state(s, SMTP_ST_GREETING);
    s->awaiting = 1;
}

void
smtp_session_on_connect_failed(struct smtp_session *s, enum status st, int err)
{
    char text[SMTP_REPLY_TEXT_MAX];

    if (s->state != SMTP_ST_CONNECTING)
        return;
    if (snprintf(text, sizeof text, "connect failed: %s",
                 err != 0 ? strerror(err) : status_str(st)) < 0)
        text[0] = '\0';
    smtp_outcome_fail_plain(s, VR_MX_UNREACHABLE, text);
    smtp_session_try_next_address(s);
}

void
smtp_session_on_data(struct smtp_session *s, const char *data, size_t len)
{
    unsigned gen = s->conn_gen;
    struct smtp_reply reply;
    size_t used;
    enum status st;

    /* A server may send several replies in one segment (RFC 2920), so
     * feed until the bytes are used up or the connection changes. */
    while (len > 0 && s->conn_gen == gen && s->state != SMTP_ST_DONE &&
           s->state != SMTP_ST_CONNECTING) {
        if (s->state == SMTP_ST_TLS) {
            /* Bytes after the 220 to STARTTLS came in plaintext, so anyone
             * on the path could have added them (the client side of the
             * command injection of CVE-2011-0411): they are dropped. */
            log_warn(&s->lctx,
                     "ev=plaintext_dropped octets=%zu after=starttls_reply",
                     len);
            return;
        }
        used = 0;
        st = smtp_reply_feed(&s->parser, data, len, &used, &reply);
        if (st == ST_AGAIN)
            return;
        if (st != ST_OK) {
            smtp_session_protocol_error(s, "malformed reply");
            return;
        }
        data += used;
        len -= used;
        smtp_on_reply(s, &reply);
    }
}

void
smtp_session_on_closed(struct smtp_session *s, enum status st, int err)
{
    (void)st;
    (void)err;
    switch (s->state) {
    case SMTP_ST_CONNECTING:
        smtp_session_on_connect_failed(s, ST_ECLOSED, 0);
        return;
    case SMTP_ST_GREETING:
        on_lost(s, "connection closed before the greeting");
        return;
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO:
    case SMTP_ST_MAIL:
    case SMTP_ST_RCPT:
    case SMTP_ST_RSET:
    case SMTP_ST_STARTTLS:
    case SMTP_ST_TLS:
        on_lost(s, "connection closed by the server");
        return;
    case SMTP_ST_QUIT:
        end_quit(s);
        return;
    case SMTP_ST_IDLE:
    case SMTP_ST_DONE:
        return;
    case SMTP_ST_NSTATES:
    default:
        break;
    }
    log_crit(&s->lctx, "ev=bad_state state=%d", (int)s->state);
    abort();
}

void
smtp_session_on_timeout(struct smtp_session *s)
{
    switch (s->state) {
    case SMTP_ST_IDLE:
        finish(s);
        return;
    case SMTP_ST_CONNECTING:
        smtp_outcome_fail_plain(s, VR_MX_UNREACHABLE, "connect timed out");
        smtp_session_try_next_address(s);
        return;
    case SMTP_ST_GREETING:
        /* No transaction has started, so another host may do better. */
        smtp_outcome_fail_plain(s, VR_TIMEOUT,
                                "timed out waiting for the greeting");
        smtp_session_try_next_address(s);
        return;
    case SMTP_ST_EHLO:
    case SMTP_ST_HELO:
    case SMTP_ST_MAIL:
    case SMTP_ST_RCPT:
    case SMTP_ST_RSET:
    case SMTP_ST_STARTTLS:
        /* A tarpit or a stalled server: another host of the domain may
         * answer in time; when none does, the addresses are retried on
         * the schedule. */
        log_warn(&s->lctx, "ev=timeout state=%s st=etimedout",
                 smtp_state_str(s->state));
        smtp_outcome_fail_plain(s, VR_TIMEOUT, "timed out waiting for a reply");
        smtp_session_try_next_address(s);
        return;
    case SMTP_ST_TLS:
        log_warn(&s->lctx, "ev=tls_failed st=etimedout why=handshake");
        smtp_outcome_fail_plain(s, VR_TIMEOUT,
                                "timed out in the TLS handshake");
        smtp_session_try_next_address(s);
        return;
    case SMTP_ST_QUIT:
        end_quit(s);
        return;
    case SMTP_ST_DONE:
        return;
    case SMTP_ST_NSTATES:
    default:
        break;
    }
    log_crit(&s->lctx, "ev=bad_state state=%d", (int)s->state);
    abort();
}

void
smtp_session_on_tls_done(struct smtp_session *s, enum status st,
                         const char *info)
{
    char quoted[LOG_QUOTE_MAX];
    char text[SMTP_REPLY_TEXT_MAX];

    if (s->state != SMTP_ST_TLS)
        return;
    if (st != ST_OK) {
        log_warn(&s->lctx, "ev=tls_failed st=%s why=%s", status_str(st),
                 log_quote(quoted, sizeof quoted, info));
        if (snprintf(text, sizeof text, "TLS handshake failed: %s", info) < 0)
            text[0] = '\0';
        smtp_outcome_fail_plain(s, VR_PROTOCOL_ERROR, text);
        smtp_session_try_next_address(s);
        return;
    }
    /* info contains key=value pairs whose values tls.c already quoted. */
    log_debug(&s->lctx, "ev=tls_on %s", info);
    smtp_starttls_forget_before_tls(s);
    smtp_session_set_state(s, SMTP_ST_EHLO);
    st = smtp_session_send_command(s, VERB_EHLO, s->cfg->helo_name);
    if (st != ST_OK)
        smtp_session_send_failed(s, st);
}

/* ---- queries ---- */

enum smtp_state
smtp_session_state(const struct smtp_session *s)
{
    return s->state;
}

const struct smtp_outcome *
smtp_session_outcome(const struct smtp_session *s, size_t job)
{
    assert(job < s->item->n_jobs);
    return &s->outcomes[job];
}

bool
smtp_session_tested_catch_all(const struct smtp_session *s)
{
    return s->n_rcpts > 0 && s->rcpts[0].job < 0;
}

enum tristate
smtp_session_catch_all(const struct smtp_session *s)
{
    return s->catch_all;
}

int
smtp_session_connects(const struct smtp_session *s)
{
    return s->connects;
}

const char *
smtp_session_mx(const struct smtp_session *s)
{
    return s->mx_idx < s->item->n_mx ? s->item->mx[s->mx_idx].name : NULL;
}
