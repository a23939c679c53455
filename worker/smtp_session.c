/* SPDX-License-Identifier: MIT */
/*
 * The SMTP client state machine of the worker. smtp_set_state() is the only
 * writer of the state, checks each move against a table and re-arms the
 * state's timeout; smtp_on_reply() is the only dispatcher, with one handler
 * per state. Connection-level failures (connect errors, a 4xx greeting, 421)
 * move on to the next address of the item; everything else ends in an
 * outcome per address. Sockets and timers belong to the transport.
 */
#include "smtp_session.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_reply.h"
#include "xalloc.h"

/*
 * RFC 2920 lets a client send several RCPT commands before it reads their
 * replies. A batch is sent, all its replies are read, then the next batch
 * goes out; the bound keeps what a slow server must buffer small.
 */
#define RCPT_BATCH_MAX 16

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

/*
 * Every command the session can send. There is deliberately no DATA (nor
 * BDAT): no mail is ever transferred, and a verb missing from this table
 * cannot be sent.
 */
enum smtp_verb {
    VERB_EHLO,
    VERB_HELO,
    VERB_MAIL,
    VERB_MAIL_UTF8,
    VERB_RCPT,
    VERB_RSET,
    VERB_QUIT,
    VERB_STARTTLS,
    VERB_NVERBS
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

/* One RCPT TO the session has to send. */
struct rcpt {
    const char *addr; /* the job's address, or probe_addr */
    long job;         /* index into item->jobs; -1 for the catch-all test */
    bool decided;
    bool utf8; /* local part needs SMTPUTF8 (RFC 6531) */
};

struct smtp_session {
    enum smtp_state state;
    const struct probe_item *item;
    const struct smtp_session_config *cfg;
    struct smtp_transport t;
    smtp_session_done_fn *done;
    void *done_arg;
    struct log_ctx lctx;

    /* The address being tried: item->mx[mx_idx].ips[ip_idx]. */
    size_t mx_idx;
    size_t ip_idx;
    int connects;
    unsigned conn_gen; /* bumped per connection; stale input is dropped */

    struct smtp_reply_parser parser;
    size_t awaiting; /* replies still expected on this connection */
    bool pipelining; /* EHLO advertised PIPELINING (RFC 2920) */
    bool smtputf8;   /* EHLO advertised SMTPUTF8 (RFC 6531) */
    bool use_sender; /* the null sender was refused: use cfg->sender */
    bool starttls;   /* EHLO advertised STARTTLS (RFC 3207) */
    bool tls;        /* TLS is on for this connection */
    bool tls_needed; /* a reply of this RCPT batch asked for STARTTLS */

    struct rcpt *rcpts;
    size_t n_rcpts;
    size_t rcpt_next; /* where the next batch starts looking */
    size_t batch[RCPT_BATCH_MAX];
    size_t batch_n;
    size_t batch_got;
    size_t txn_accepted; /* 2xx RCPT replies in this transaction */
    bool txn_full;       /* "too many recipients": RSET, then go on */

    /* Anti-harvesting servers drop the connection (or send 421) after a
     * few unknown recipients. Past the first such drop, each connection
     * sends at most rcpt_cap RCPTs, halved at every further drop, and the
     * rest go on a new connection to the same address. */
    size_t conn_sent;    /* RCPTs sent on this connection */
    size_t conn_replies; /* RCPT replies read on this connection */
    size_t rcpt_cap;     /* RCPTs per connection; 0 when not limited */
    bool reconnect;      /* QUIT, then connect to the same address */

    char *probe_addr;
    enum tristate catch_all;

    struct smtp_outcome *outcomes; /* one per item job */
    struct smtp_outcome failure;   /* the outcome for addresses still
                                      undecided when the session ends */
};

static void on_lost(struct smtp_session *s, const char *why);
static bool any_undecided(const struct smtp_session *s, bool utf8_only);

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
static enum smtp_stage
state_stage(enum smtp_state st)
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
static void
smtp_set_state(struct smtp_session *s, enum smtp_state next)
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

/* ---- outcomes ---- */

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
static void
plain_outcome(const struct smtp_session *s, enum verdict_reason reason,
              const char *text, struct smtp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->has_smtp = true;
    o->smtp.stage = state_stage(s->state);
    o->smtp.code = 0;
    set_text(o->smtp.text, sizeof o->smtp.text, text);
    o->cls.status = verdict_reason_status(reason);
    o->cls.reason = reason;
    o->cls.retry = reason_is_transient(reason);
    o->mx = s->lctx.mx;
    o->ip = s->lctx.ip;
}

/* Records a failure without a reply for the addresses still undecided. */
static void
fail_plain(struct smtp_session *s, enum verdict_reason reason, const char *text)
{
    plain_outcome(s, reason, text, &s->failure);
}

static void
outcome_from_reply(const struct smtp_session *s, const struct smtp_reply *r,
                   struct smtp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->decided = true;
    o->has_smtp = true;
    o->smtp.stage = state_stage(s->state);
    o->smtp.code = r->code;
    set_text(o->smtp.enhanced, sizeof o->smtp.enhanced, r->enhanced);
    set_text(o->smtp.text, sizeof o->smtp.text, r->text);
    classify_reply(o->smtp.stage, r, &o->cls);
    o->mx = s->lctx.mx;
    o->ip = s->lctx.ip;
}

static void
fail_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    outcome_from_reply(s, r, &s->failure);
    s->failure.decided = false;
}

/* Gives every undecided address the recorded failure. */
static void
decide_rest(struct smtp_session *s)
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
static void
apply_catch_all(struct smtp_session *s)
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

/* Ends the session: closes the connection and fires the callback. */
static void
finish(struct smtp_session *s)
{
    decide_rest(s);
    apply_catch_all(s);
    s->t.close(s->t.ctx);
    smtp_set_state(s, SMTP_ST_DONE);
    s->done(s, s->done_arg);
}

/* ---- sending ---- */

static bool
has_control_char(const char *text)
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
static enum status
send_command(struct smtp_session *s, enum smtp_verb verb, const char *arg)
{
    const struct verb_form *f = &verb_forms[verb];
    char line[CMD_LINE_MAX + 1];
    int n;

    if (has_control_char(arg)) {
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

/* Handles a failed send_command(): a refused argument ends the session,
 * a transport error counts as a lost connection. */
static void
send_failed(struct smtp_session *s, enum status st)
{
    if (st == ST_EINVAL) {
        fail_plain(s, VR_PROTOCOL_ERROR,
                   "command not sent: its argument has a control character "
                   "or is too long");
        finish(s);
        return;
    }
    on_lost(s, "sending a command failed");
}

/* Gives the undecided addresses the recorded failure and sends QUIT. */
static void
quit(struct smtp_session *s)
{
    enum status st;

    decide_rest(s);
    smtp_set_state(s, SMTP_ST_QUIT);
    s->awaiting = 0;
    st = send_command(s, VERB_QUIT, "");
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

static void
connect_current(struct smtp_session *s)
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
    smtp_set_state(s, SMTP_ST_CONNECTING);
    s->t.connect(s->t.ctx, mx->ips[s->ip_idx]);
}

/* Drops this connection and tries the next address, or ends the session
 * with the recorded failure when there is none. */
static void
try_next_address(struct smtp_session *s)
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
    connect_current(s);
}

/*
 * Whether a connection lost among the RCPTs looks like an anti-harvesting
 * limit: some RCPTs were answered on it, so smaller sessions make
 * progress. A loss before any answer says nothing of the kind.
 */
static bool
harvest_suspected(const struct smtp_session *s)
{
    return s->state == SMTP_ST_RCPT && s->conn_replies > 0 &&
           any_undecided(s, false);
}

/*
 * Connects again to the same address for the undecided addresses, with
 * at most half the RCPTs this connection carried. The answers already
 * read stay. Each such connection decided at least one address, so the
 * reconnects end.
 */
static void
reconnect_smaller(struct smtp_session *s, const char *why)
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
    connect_current(s);
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
    smtp_set_state(s, SMTP_ST_QUIT);
    s->awaiting = 0;
    st = send_command(s, VERB_QUIT, "");
    if (st != ST_OK) {
        s->t.close(s->t.ctx);
        connect_current(s);
    }
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
    connect_current(s);
}

/* The connection went away in the middle of the dialogue. */
static void
on_lost(struct smtp_session *s, const char *why)
{
    if (harvest_suspected(s)) {
        reconnect_smaller(s, why);
        return;
    }
    if (s->state == SMTP_ST_GREETING) {
        fail_plain(s, VR_MX_UNREACHABLE, why);
    } else {
        fail_plain(s, VR_TEMPORARY_FAILURE, why);
    }
    try_next_address(s);
}

static void
protocol_error(struct smtp_session *s, const char *why)
{
    log_warn(&s->lctx, "ev=protocol_error state=%s st=eproto why=%s",
             smtp_state_str(s->state), why);
    fail_plain(s, VR_PROTOCOL_ERROR, why);
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
    plain_outcome(s, VR_PROTOCOL_ERROR,
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

static bool
any_undecided(const struct smtp_session *s, bool utf8_only)
{
    for (size_t i = 0; i < s->n_rcpts; i++) {
        if (!s->rcpts[i].decided && (!utf8_only || s->rcpts[i].utf8))
            return true;
    }
    return false;
}

static void
start_mail(struct smtp_session *s)
{
    enum smtp_verb verb = VERB_MAIL;
    const char *sender = s->use_sender ? s->cfg->sender : "";
    enum status st;

    decide_utf8_without_support(s);
    if (!any_undecided(s, false)) {
        quit(s);
        return;
    }
    if (s->smtputf8 && any_undecided(s, true))
        verb = VERB_MAIL_UTF8;
    smtp_set_state(s, SMTP_ST_MAIL);
    st = send_command(s, verb, sender);
    if (st != ST_OK)
        send_failed(s, st);
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
        st = send_command(s, VERB_RCPT, s->rcpts[i].addr);
        if (st != ST_OK) {
            send_failed(s, st);
            return;
        }
        s->batch[s->batch_n++] = i;
        s->conn_sent++;
    }
    s->rcpt_next = i;
    if (s->batch_n > 0)
        return;
    if (limit == 0 && any_undecided(s, false))
        quit_to_reconnect(s);
    else
        quit(s);
}

/* ---- one handler per state ---- */

static void
on_greeting(struct smtp_session *s, const struct smtp_reply *r)
{
    enum status st;

    switch (r->code / 100) {
    case 2:
        smtp_set_state(s, SMTP_ST_EHLO);
        st = send_command(s, VERB_EHLO, s->cfg->helo_name);
        if (st != ST_OK)
            send_failed(s, st);
        return;
    case 4:
        /* RFC 5321 section 3.1: a 4xx greeting (usually 421) means "not
         * now, here"; another host of the domain may answer. */
        fail_reply(s, r);
        try_next_address(s);
        return;
    case 5:
        fail_reply(s, r);
        quit(s);
        return;
    default:
        protocol_error(s, "greeting is not 2xx, 4xx or 5xx");
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
        start_mail(s);
        return;
    }
    if (r->code == 421) {
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    if (r->code / 100 == 5) {
        /* RFC 5321 section 4.1.4: a server that does not know EHLO still
         * takes HELO. */
        smtp_set_state(s, SMTP_ST_HELO);
        st = send_command(s, VERB_HELO, s->cfg->helo_name);
        if (st != ST_OK)
            send_failed(s, st);
        return;
    }
    if (r->code / 100 == 4) {
        fail_reply(s, r);
        quit(s);
        return;
    }
    protocol_error(s, "EHLO reply is not 2xx, 4xx or 5xx");
}

static void
on_helo(struct smtp_session *s, const struct smtp_reply *r)
{
    int cls = r->code / 100;

    if (cls == 2) {
        start_mail(s);
        return;
    }
    if (r->code == 421) {
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    if (cls == 4 || cls == 5) {
        fail_reply(s, r);
        quit(s);
        return;
    }
    protocol_error(s, "HELO reply is not 2xx, 4xx or 5xx");
}

/* Whether r refuses to go on until TLS is on: RFC 3207 uses 530 5.7.0,
 * and the classifier also knows the usual texts. */
static bool
tls_refusal(const struct smtp_session *s, const struct smtp_reply *r)
{
    struct classification cls;

    classify_reply(state_stage(s->state), r, &cls);
    return cls.category == RC_TLS_REQUIRED;
}

/*
 * Whether r is a TLS refusal and STARTTLS can still be tried: EHLO offered
 * it, TLS is not on yet and the transport has TLS. Otherwise the refusal
 * is an answer like any other, which the classifier makes
 * unknown/protocol_error.
 */
static bool
tls_required(const struct smtp_session *s, const struct smtp_reply *r)
{
    if (s->tls || !s->starttls || s->t.starttls == NULL)
        return false;
    return tls_refusal(s, r);
}

/* Sends STARTTLS. No command follows it before the handshake, because
 * anything sent behind it would go out in plaintext. */
static void
start_tls(struct smtp_session *s)
{
    enum status st;

    log_info(&s->lctx, "ev=starttls why=required state=%s",
             smtp_state_str(s->state));
    smtp_set_state(s, SMTP_ST_STARTTLS);
    st = send_command(s, VERB_STARTTLS, "");
    if (st != ST_OK)
        send_failed(s, st);
}

/* RFC 3207 section 4.2: everything learned from the server before TLS
 * may have been forged, so it is forgotten, and EHLO is sent again. */
static void
forget_before_tls(struct smtp_session *s)
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

static void
on_mail(struct smtp_session *s, const struct smtp_reply *r)
{
    int cls = r->code / 100;
    enum status st;

    if (cls == 2) {
        s->txn_accepted = 0;
        s->txn_full = false;
        s->rcpt_next = 0;
        smtp_set_state(s, SMTP_ST_RCPT);
        send_rcpt_batch(s);
        return;
    }
    if (r->code == 421) {
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    if (tls_required(s, r)) {
        start_tls(s);
        return;
    }
    if (cls == 5 && !s->use_sender && s->cfg->sender != NULL &&
        s->cfg->sender[0] != '\0' && !tls_refusal(s, r)) {
        /* Some servers refuse the null sender. A failed MAIL starts no
         * transaction (RFC 5321 section 4.1.1.2), so no RSET is needed. */
        s->use_sender = true;
        smtp_set_state(s, SMTP_ST_MAIL);
        st = send_command(s,
                          s->smtputf8 && any_undecided(s, true) ? VERB_MAIL_UTF8
                                                                : VERB_MAIL,
                          s->cfg->sender);
        if (st != ST_OK)
            send_failed(s, st);
        return;
    }
    if (cls == 4 || cls == 5) {
        fail_reply(s, r);
        quit(s);
        return;
    }
    protocol_error(s, "MAIL reply is not 2xx, 4xx or 5xx");
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
        outcome_from_reply(s, r, &s->outcomes[rc->job]);
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

static void
on_rcpt(struct smtp_session *s, const struct smtp_reply *r)
{
    struct rcpt *rc = &s->rcpts[s->batch[s->batch_got++]];

    if (r->code == 421) {
        /* The server is going away (RFC 5321 section 3.8): the rest are
         * asked of the next address, or later on the retry schedule. */
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    s->conn_replies++;
    if (tls_required(s, r)) {
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

        smtp_set_state(s, SMTP_ST_RSET);
        st = send_command(s, VERB_RSET, "");
        if (st != ST_OK)
            send_failed(s, st);
        return;
    }
    s->t.set_timer(s->t.ctx, s->cfg->rcpt_timeout);
    send_rcpt_batch(s);
}

/*
 * RFC 3207: a 2xx (220) reply starts the handshake at once.
 * Other replies (454 "TLS not available due to temporary reason", 501)
 * make this host useless for addresses that need TLS, so the next address
 * is tried and the reply is kept as the failure. It is classified at the
 * EHLO stage, which says nothing about a mailbox.
 */
static void
on_starttls(struct smtp_session *s, const struct smtp_reply *r)
{
    enum status st;

    if (r->code / 100 != 2) {
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    smtp_set_state(s, SMTP_ST_TLS);
    smtp_reply_parser_init(&s->parser);
    st = s->t.starttls(s->t.ctx, s->lctx.mx);
    if (st != ST_OK) {
        log_warn(&s->lctx, "ev=tls_failed st=%s why=not_started",
                 status_str(st));
        fail_plain(s, VR_PROTOCOL_ERROR, "TLS could not be started");
        try_next_address(s);
    }
}

static void
on_rset(struct smtp_session *s, const struct smtp_reply *r)
{
    if (r->code / 100 == 2 && s->tls_needed) {
        start_tls(s);
        return;
    }
    if (r->code / 100 == 2) {
        start_mail(s);
        return;
    }
    if (r->code == 421) {
        fail_reply(s, r);
        try_next_address(s);
        return;
    }
    fail_reply(s, r);
    quit(s);
}

/* The dispatcher: one reply, one handler. */
static void
smtp_on_reply(struct smtp_session *s, const struct smtp_reply *r)
{
    if (s->awaiting == 0) {
        protocol_error(s, "reply without a command");
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
        on_mail(s, r);
        break;
    case SMTP_ST_RCPT:
        on_rcpt(s, r);
        break;
    case SMTP_ST_RSET:
        on_rset(s, r);
        break;
    case SMTP_ST_STARTTLS:
        on_starttls(s, r);
        break;
    case SMTP_ST_TLS:
        /* smtp_session_on_data() drops input in this state. */
        protocol_error(s, "reply during the TLS handshake");
        break;
    case SMTP_ST_QUIT:
        end_quit(s);
        break;
    case SMTP_ST_IDLE:
    case SMTP_ST_CONNECTING:
    case SMTP_ST_DONE:
        protocol_error(s, "reply while not connected");
        break;
    case SMTP_ST_NSTATES:
    default:
        log_crit(&s->lctx, "ev=bad_state state=%d", (int)s->state);
        abort();
    }
}

/* ---- creation ---- */

/* Whether addr can be sent: no control character and in the item's
 * domain (a probe item never mixes domains). */
static bool
rcpt_address_ok(const char *addr, const char *domain)
{
    const char *at;

    if (addr == NULL || addr[0] == '\0' || has_control_char(addr))
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

static void
add_rcpt(struct smtp_session *s, const char *addr, long job)
{
    struct rcpt *rc = &s->rcpts[s->n_rcpts++];

    rc->addr = addr;
    rc->job = job;
    rc->decided = false;
    rc->utf8 = has_high_bit(addr);
}

static void
reject_job(struct smtp_session *s, size_t job)
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

static void
build_probe(struct smtp_session *s)
{
    const struct probe_item *item = s->item;
    size_t len;

    if (item->catchall_local == NULL)
        return;
    len = strlen(item->catchall_local) + strlen(item->domain) + 2;
    s->probe_addr = xmalloc(len);
    if (snprintf(s->probe_addr, len, "%s@%s", item->catchall_local,
                 item->domain) < 0 ||
        !rcpt_address_ok(s->probe_addr, item->domain)) {
        log_warn(&s->lctx, "ev=catch_all_test_skipped why=invalid_local");
        return;
    }
    add_rcpt(s, s->probe_addr, -1);
}

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

    build_probe(s);
    for (size_t i = 0; i < item->n_jobs; i++) {
        if (rcpt_address_ok(item->jobs[i].address, item->domain))
            add_rcpt(s, item->jobs[i].address, (long)i);
        else
            reject_job(s, i);
    }
    fail_plain(s, VR_MX_UNREACHABLE, "the item lists no MX address");
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
    if (!address_valid(s) || !any_undecided(s, false)) {
        /* Nothing to connect to or nothing to ask: end on the next loop
         * turn, because the callback must not fire from here. */
        s->t.set_timer(s->t.ctx, 0.001);
        return;
    }
    connect_current(s);
}

/* ---- transport events ---- */

void
smtp_session_on_connected(struct smtp_session *s)
{
    if (s->state != SMTP_ST_CONNECTING)
        return;
    smtp_set_state(s, SMTP_ST_GREETING);
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
    fail_plain(s, VR_MX_UNREACHABLE, text);
    try_next_address(s);
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
            protocol_error(s, "malformed reply");
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
        fail_plain(s, VR_MX_UNREACHABLE, "connect timed out");
        try_next_address(s);
        return;
    case SMTP_ST_GREETING:
        /* No transaction has started, so another host may do better. */
        fail_plain(s, VR_TIMEOUT, "timed out waiting for the greeting");
        try_next_address(s);
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
        fail_plain(s, VR_TIMEOUT, "timed out waiting for a reply");
        try_next_address(s);
        return;
    case SMTP_ST_TLS:
        log_warn(&s->lctx, "ev=tls_failed st=etimedout why=handshake");
        fail_plain(s, VR_TIMEOUT, "timed out in the TLS handshake");
        try_next_address(s);
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
        fail_plain(s, VR_PROTOCOL_ERROR, text);
        try_next_address(s);
        return;
    }
    /* info holds key=value pairs whose values tls.c already quoted. */
    log_debug(&s->lctx, "ev=tls_on %s", info);
    forget_before_tls(s);
    smtp_set_state(s, SMTP_ST_EHLO);
    st = send_command(s, VERB_EHLO, s->cfg->helo_name);
    if (st != ST_OK)
        send_failed(s, st);
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
