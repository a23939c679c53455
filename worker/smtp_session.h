/* SPDX-License-Identifier: MIT */
/*
 * The SMTP client side of one probe item, as an explicit state machine: it
 * walks the item's MX hosts and their addresses, greets, sends MAIL and one
 * RCPT per address (the catch-all test address first), and ends with QUIT.
 * It owns no socket and no timer: it talks to a small transport (connect,
 * send, close, arm a timer) and is fed the transport's events, so tests can
 * drive it byte by byte. It never sends DATA; its command table has no such
 * verb. When a server rejects MAIL or RCPT until TLS is on and its EHLO
 * reply offered STARTTLS, the session sends STARTTLS, has the transport run
 * the handshake and starts over with EHLO (RFC 3207). It never upgrades
 * unasked, so probes of servers that do not require TLS stay cheap.
 */
#ifndef MXPROBE_SMTP_SESSION_H
#define MXPROBE_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "classify.h"
#include "codec.h"
#include "status.h"
#include "verdict.h"

enum smtp_state {
    SMTP_ST_IDLE,       /* created, smtp_session_start() not called yet */
    SMTP_ST_CONNECTING, /* TCP connect in flight */
    SMTP_ST_GREETING,   /* waiting for the 220 greeting */
    SMTP_ST_EHLO,
    SMTP_ST_HELO, /* fallback after a 5xx reply to EHLO */
    SMTP_ST_MAIL, /* MAIL FROM:<> or, after a refusal, the sender */
    SMTP_ST_RCPT, /* RCPT TO commands, in batches when pipelining */
    SMTP_ST_RSET, /* new transaction after "too many recipients" */
    SMTP_ST_STARTTLS, /* STARTTLS sent after a "TLS required" refusal */
    SMTP_ST_TLS,      /* TLS handshake in flight (RFC 3207) */
    SMTP_ST_QUIT,
    SMTP_ST_DONE, /* every address has an outcome; connection closed */
    SMTP_ST_NSTATES
};

/* Returns the lowercase state name used in logs ("rcpt"). */
const char *smtp_state_str(enum smtp_state st);

/*
 * The session's view of the network. The session calls these from its own
 * functions; the transport reports back through the smtp_session_on_*()
 * functions, never from inside one of these calls.
 */
struct smtp_transport {
    /* Opens a new connection to ip (the port is the transport's), closing
     * any previous one. Exactly one of on_connected and on_connect_failed
     * follows, unless close or another connect comes first. */
    void (*connect)(void *ctx, const char *ip);
    /* Queues bytes for sending. ST_OK, or an error when the connection is
     * gone or its output buffer is full; the session then gives up on this
     * connection. */
    enum status (*send)(void *ctx, const char *data, size_t len);
    /* Closes the connection if one is open; no event follows. */
    void (*close)(void *ctx);
    /* Arms the single session timer, replacing the previous deadline;
     * seconds <= 0 stops it. On expiry: smtp_session_on_timeout(). */
    void (*set_timer)(void *ctx, double seconds);
    /* Starts TLS on the open connection, sending sni (borrowed for the
     * call) as the server name; anything the server sent before is
     * dropped. ST_OK: smtp_session_on_tls_done() follows once, unless
     * close or connect comes first; an error: nothing follows. NULL when
     * the transport has no TLS, and then STARTTLS is never sent. */
    enum status (*starttls)(void *ctx, const char *sni);
    void *ctx;
};

struct smtp_session_config {
    const char *helo_name;  /* EHLO/HELO argument */
    const char *sender;     /* MAIL FROM after a refused null sender; "" for
                               none */
    double connect_timeout; /* seconds, per state */
    double greeting_timeout;
    double ehlo_timeout; /* EHLO and HELO */
    double mail_timeout; /* MAIL and RSET */
    double rcpt_timeout; /* each RCPT reply */
    double quit_timeout;
};

/* The outcome for one job of the item. */
struct smtp_outcome {
    bool decided;
    bool has_smtp; /* smtp contains the deciding reply */
    struct smtp_evidence smtp;
    struct classification cls;
    const char *mx; /* host that decided, NULL when none;
                       borrowed from the item */
    const char *ip;
};

struct smtp_session;

/* Fires exactly once, when the session reaches SMTP_ST_DONE. The callback
 * must not free the session; free it after the callback has returned. */
typedef void smtp_session_done_fn(struct smtp_session *s, void *arg);

/*
 * Creates a session for item. item, cfg, t and log_id are borrowed and must
 * outlive the session. Addresses that contain a control character or are
 * not in the item's domain are decided at once as undeliverable/syntax and
 * never sent.
 */
struct smtp_session *smtp_session_new(const struct probe_item *item,
                                      const struct smtp_session_config *cfg,
                                      const struct smtp_transport *t,
                                      const char *log_id,
                                      smtp_session_done_fn *done, void *arg);

/* Stops the timer, closes the transport and frees s. NULL is allowed. */
void smtp_session_free(struct smtp_session *s);

/* Connects to the first address of the first MX host. The done callback
 * never fires from inside this call. */
void smtp_session_start(struct smtp_session *s);

/* Transport events. */
void smtp_session_on_connected(struct smtp_session *s);
void smtp_session_on_connect_failed(struct smtp_session *s, enum status st,
                                    int err);
void smtp_session_on_data(struct smtp_session *s, const char *data, size_t len);
void smtp_session_on_closed(struct smtp_session *s, enum status st, int err);
void smtp_session_on_timeout(struct smtp_session *s);
/* Reports the end of the TLS handshake. On success st is ST_OK and info
 * describes the TLS session for the log. On failure st is the error, info
 * gives the reason, and the connection is already closed. */
void smtp_session_on_tls_done(struct smtp_session *s, enum status st,
                              const char *info);

enum smtp_state smtp_session_state(const struct smtp_session *s);

/* The outcome of item->jobs[job]; final once the session is done. When the
 * domain is catch-all (the item marks it so, or this session's test
 * address was accepted), an accepted address is reported as risky/catch_all. */
const struct smtp_outcome *smtp_session_outcome(const struct smtp_session *s,
                                                size_t job);

/* Whether the item asked for a catch-all test, and what it found: TRI_YES
 * (the random address was accepted), TRI_NO (rejected with 5xx) or
 * TRI_UNKNOWN (4xx, or no answer). */
bool smtp_session_tested_catch_all(const struct smtp_session *s);
enum tristate smtp_session_catch_all(const struct smtp_session *s);

/* TCP connections the session attempted. */
int smtp_session_connects(const struct smtp_session *s);

/* The MX host the session is connecting or talking to (borrowed from the
 * item), NULL when none is left. Inside the transport's connect it names
 * the host of the ip being connected. */
const char *smtp_session_mx(const struct smtp_session *s);

#endif
