/* SPDX-License-Identifier: MIT */
/*
 * One outgoing TCP connection on the libev loop: a non-blocking connect
 * (bound to a chosen source address when one is given), a read watcher that
 * hands every chunk read to the owner, a bounded output buffer drained by a
 * write watcher, and one timer the owner arms for its deadlines. On request
 * it upgrades the connection to TLS (tls.c) in the middle of the stream,
 * after which reads and writes carry plaintext as before. It knows nothing
 * about SMTP. The struct is embedded in its owner and reused for the next
 * connection after conn_close().
 */
#ifndef MXPROBE_CONN_H
#define MXPROBE_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "tls.h"

/* Enough for a batch of pipelined commands of 512 octets each. */
#define CONN_OUT_MAX 16384
/* Bytes taken from the socket per read event. */
#define CONN_READ_CHUNK 4096
/* Size of the text given to on_tls_done. */
#define CONN_TLS_INFO_MAX 1024

/*
 * Events, all fired from the loop, never from inside a conn_* call. A
 * handler may call conn_close(), conn_connect() or conn_send() on the same
 * conn; the conn is not touched after the handler returns.
 */
struct conn_handlers {
    void (*on_connected)(void *arg);
    void (*on_connect_failed)(void *arg, enum status st, int err);
    /* data is valid only during the call. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* The peer closed (ST_ECLOSED), a socket call failed (ST_EIO with
     * err set) or TLS failed after its handshake (ST_EPROTO); the conn is
     * already closed. */
    void (*on_closed)(void *arg, enum status st, int err);
    void (*on_timeout)(void *arg);
    /* Ends a conn_starttls(): st is ST_OK and info describes the session
     * (key=value pairs quoted for logs), or st tells the failure
     * (ST_EPROTO, ST_ECLOSED, ST_EIO), info says why and the conn is
     * already closed. info is valid only during the call. */
    void (*on_tls_done)(void *arg, enum status st, const char *info);
};

struct conn {
    struct ev_loop *loop;
    const struct conn_handlers *h;
    void *arg;
    int port;
    int fd; /* -1 when closed */
    bool connecting;
    int defer_err; /* errno of a connect that failed at once */
    ev_io rio;
    ev_io wio;
    ev_timer timer; /* the owner's deadline */
    ev_timer defer; /* reports defer_err on the next loop turn */
    char out[CONN_OUT_MAX];
    size_t out_len;
    struct tls *tls;  /* owned; NULL while the connection is plain */
    bool handshaking; /* the TLS handshake is running */
    bool write_waits; /* a TLS write waits for a writable socket */
    bool read_waits;  /* a TLS read waits for a writable socket */
    unsigned gen;     /* bumped by conn_close(), so a loop that ran a
                         handler can tell that the connection went away */
};

/* Prepares c (owned by the caller) for connections to port on loop. h and
 * arg are borrowed and must outlive c. */
void conn_init(struct conn *c, struct ev_loop *loop, int port,
               const struct conn_handlers *h, void *arg);

/* Closes the connection and stops the timer. */
void conn_fini(struct conn *c);

/*
 * Closes any open connection and connects to ip (IPv4 or IPv6 text),
 * binding to source_ip first when it is not NULL. Exactly one of
 * on_connected and on_connect_failed follows, unless the conn is closed
 * first. An invalid ip is reported through on_connect_failed as ST_EINVAL.
 */
void conn_connect(struct conn *c, const char *ip, const char *source_ip);

/*
 * Queues len bytes and writes what the socket takes now (through TLS once
 * it is on). Returns ST_OK; ST_ECLOSED when not connected or during the
 * TLS handshake; ST_EPROTO when the output buffer would overflow or TLS
 * failed; ST_EIO when the socket failed (errno is set). After an error no
 * event about it follows: the caller decides what to do.
 */
enum status conn_send(struct conn *c, const char *data, size_t len);

/*
 * Starts TLS on the open connection (RFC 3207 STARTTLS; the caller has
 * read the server's 220) with settings from tc, sending sni as the server
 * name. tc is borrowed and must outlive the connection. The handshake runs
 * from the loop; on_tls_done fires exactly once unless the conn is closed
 * first. Returns ST_OK; ST_ECLOSED when not connected; ST_EINVAL when TLS
 * is already on or output is still queued (a command sent after STARTTLS
 * would have gone out in plaintext); ST_EIO when OpenSSL cannot create
 * the session. After an error nothing fires.
 */
enum status conn_starttls(struct conn *c, struct tls_client *tc,
                          const char *sni);

/* Stops the watchers, frees the TLS session, then closes the socket. Safe
 * to call when closed. */
void conn_close(struct conn *c);

/* Arms the timer to fire once after seconds; seconds <= 0 stops it. */
void conn_set_timer(struct conn *c, double seconds);

/* Binds a throwaway socket to source_ip (port 0): 0 when connections can
 * use it as their source, else the errno, such as EADDRNOTAVAIL for an
 * address this host does not have, or EINVAL for one that does not parse.
 * A start-up check, so that a wrong setting is not first seen as every MX
 * host being unreachable. */
int conn_check_source(const char *source_ip);

/* Whether an IPv6 address is written in text (contains a colon). */
bool conn_ip_is_v6(const char *ip);

#endif
