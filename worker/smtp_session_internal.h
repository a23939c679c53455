/* SPDX-License-Identifier: MIT */
/*
 * The insides of struct smtp_session, shared by the files of the SMTP
 * client state machine: smtp_session.c (states, dispatcher, connections,
 * lifecycle), smtp_rcpt.c (the mail transaction), smtp_starttls.c and
 * smtp_outcome.c. It is not part of the session's interface, and the
 * worker includes smtp_session.h only. Each function is documented at its
 * definition.
 */
#ifndef MXPROBE_SMTP_SESSION_INTERNAL_H
#define MXPROBE_SMTP_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "smtp_reply.h"
#include "smtp_session.h"

/*
 * RFC 2920 lets a client send several RCPT commands before it reads their
 * replies. A batch is sent, all its replies are read, then the next batch
 * goes out; the bound keeps what a slow server must buffer small.
 */
#define RCPT_BATCH_MAX 16

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

/* smtp_session.c: the setter, sending and moving between addresses. */
void smtp_session_set_state(struct smtp_session *s, enum smtp_state next);
enum smtp_stage smtp_session_state_stage(enum smtp_state st);
bool smtp_session_has_control_char(const char *text);
enum status smtp_session_send_command(struct smtp_session *s,
                                      enum smtp_verb verb, const char *arg);
void smtp_session_send_failed(struct smtp_session *s, enum status st);
void smtp_session_quit(struct smtp_session *s);
void smtp_session_connect_current(struct smtp_session *s);
void smtp_session_try_next_address(struct smtp_session *s);
void smtp_session_protocol_error(struct smtp_session *s, const char *why);

/* smtp_outcome.c */
void smtp_outcome_plain(const struct smtp_session *s,
                        enum verdict_reason reason, const char *text,
                        struct smtp_outcome *o);
void smtp_outcome_fail_plain(struct smtp_session *s, enum verdict_reason reason,
                             const char *text);
void smtp_outcome_from_reply(const struct smtp_session *s,
                             const struct smtp_reply *r,
                             struct smtp_outcome *o);
void smtp_outcome_fail_reply(struct smtp_session *s,
                             const struct smtp_reply *r);
void smtp_outcome_decide_rest(struct smtp_session *s);
void smtp_outcome_apply_catch_all(struct smtp_session *s);

/* smtp_rcpt.c: the recipient list at creation, then the handlers of the
 * MAIL, RCPT and RSET states. */
bool smtp_rcpt_address_ok(const char *addr, const char *domain);
void smtp_rcpt_add(struct smtp_session *s, const char *addr, long job);
void smtp_rcpt_reject_job(struct smtp_session *s, size_t job);
void smtp_rcpt_build_probe(struct smtp_session *s);
bool smtp_rcpt_any_undecided(const struct smtp_session *s, bool utf8_only);
bool smtp_rcpt_harvest_suspected(const struct smtp_session *s);
void smtp_rcpt_reconnect_smaller(struct smtp_session *s, const char *why);
void smtp_rcpt_start_mail(struct smtp_session *s);
void smtp_rcpt_on_mail(struct smtp_session *s, const struct smtp_reply *r);
void smtp_rcpt_on_rcpt(struct smtp_session *s, const struct smtp_reply *r);
void smtp_rcpt_on_rset(struct smtp_session *s, const struct smtp_reply *r);

/* smtp_starttls.c */
bool smtp_starttls_refusal(const struct smtp_session *s,
                           const struct smtp_reply *r);
bool smtp_starttls_required(const struct smtp_session *s,
                            const struct smtp_reply *r);
void smtp_starttls_start(struct smtp_session *s);
void smtp_starttls_forget_before_tls(struct smtp_session *s);
void smtp_starttls_on_starttls(struct smtp_session *s,
                               const struct smtp_reply *r);

#endif
