/* SPDX-License-Identifier: MIT */
/*
 * TLS for SMTP clients with OpenSSL: the client settings shared by every
 * connection of a worker, and one TLS session over a non-blocking socket
 * whose handshake, reads and writes return ST_AGAIN with the socket event
 * they wait for. It knows nothing about libev or SMTP; conn drives it.
 * Certificates are not verified, because MX hosts often present
 * self-signed or mismatched ones and MTAs deliver to them anyway.
 */
#ifndef MXPROBE_TLS_H
#define MXPROBE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Size of the detail buffers filled below; longer texts are cut. */
#define TLS_TEXT_MAX 256

/* The socket event a call that returned ST_AGAIN waits for. */
enum tls_want { TLS_WANT_NONE, TLS_WANT_READ, TLS_WANT_WRITE };

/* Client settings (an OpenSSL SSL_CTX): TLS 1.2 or later, no certificate
 * verification, no renegotiation. */
struct tls_client;

/* One TLS session on a connected socket (an OpenSSL SSL object). */
struct tls;

/*
 * Creates the client settings. Returns ST_OK with *out owned by the caller,
 * or ST_ECONFIG with a message in err when OpenSSL cannot set them up.
 */
enum status tls_client_new(struct tls_client **out, char *err, size_t errsize);

/* Frees tc. Sessions made from it may outlive it. NULL is allowed. */
void tls_client_free(struct tls_client *tc);

/*
 * Creates a client session on fd (connected, non-blocking; the caller keeps
 * owning it) that sends sni as the server name (RFC 6066) when sni is a
 * host name. Returns ST_OK with *out owned by the caller, or ST_EIO with a
 * message in err. Nothing is sent until tls_handshake().
 */
enum status tls_new(struct tls_client *tc, int fd, const char *sni,
                    struct tls **out, char *err, size_t errsize);

/*
 * Sends a close_notify alert when the session is intact (without waiting
 * for the peer's), then frees t. The socket stays open: close it after
 * this call. NULL is allowed.
 */
void tls_free(struct tls *t);

/*
 * Runs the client handshake as far as the socket allows. Returns ST_OK when
 * it is complete; ST_AGAIN with *want set; ST_EPROTO (TLS failure),
 * ST_ECLOSED (peer closed) or ST_EIO (socket error, errno set) with
 * tls_error() telling why.
 */
enum status tls_handshake(struct tls *t, enum tls_want *want);

/*
 * Reads up to size bytes of plaintext into buf. Returns ST_OK with *got > 0;
 * ST_AGAIN with *want set; ST_ECLOSED when the peer ended the session (a
 * close_notify or, as most MTAs do after QUIT, a plain TCP close);
 * ST_EPROTO or ST_EIO as tls_handshake().
 */
enum status tls_read(struct tls *t, char *buf, size_t size, size_t *got,
                     enum tls_want *want);

/* Whether plaintext already decrypted by tls_read() is waiting; the socket
 * may not become readable again for it. */
bool tls_pending(const struct tls *t);

/*
 * Writes up to len bytes; *put tells how many were taken (a partial write
 * is ST_OK). A retry after ST_AGAIN must start with the same bytes. Returns
 * as tls_read().
 */
enum status tls_write(struct tls *t, const char *data, size_t len, size_t *put,
                      enum tls_want *want);

/* A short reason for the last failure of t, "" when none. */
const char *tls_error(const struct tls *t);

/*
 * Writes key=value pairs about an established session to out (size bytes):
 * protocol version, cipher, the peer certificate's subject and issuer, and
 * the verification result that was not enforced. Values are quoted for
 * logs. Returns out.
 */
const char *tls_describe(const struct tls *t, char *out, size_t size);

#endif
