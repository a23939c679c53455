/* SPDX-License-Identifier: MIT */
/*
 * OpenSSL client sessions for STARTTLS (RFC 3207). Every call clears the
 * thread's OpenSSL error queue first, because SSL_get_error() reads that
 * queue and a stale entry from another connection would be taken for this
 * one's failure. Failure texts are kept per session for the caller's log.
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"
#include "xalloc.h"

struct tls_client {
    SSL_CTX *ctx;
};

struct tls {
    SSL *ssl;
    bool fatal; /* after a fatal error, SSL_shutdown() must not be called */
    char err[TLS_TEXT_MAX];
};

/* Copies the oldest queued OpenSSL error (or fallback) into dst. */
static void
take_openssl_error(char *dst, size_t size, const char *fallback)
{
    unsigned long code = ERR_get_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;

    if (reason == NULL)
        reason = fallback;
    if (snprintf(dst, size, "%s", reason) < 0)
        dst[0] = '\0';
    ERR_clear_error();
}

enum status
tls_client_new(struct tls_client **out, char *err, size_t errsize)
{
    SSL_CTX *ctx;

    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        take_openssl_error(err, errsize, "SSL_CTX_new failed");
        return ST_ECONFIG;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        take_openssl_error(err, errsize, "cannot require TLS 1.2");
        SSL_CTX_free(ctx);
        return ST_ECONFIG;
    }
    /*
     * Opportunistic TLS, as MTAs use it without DANE or MTA-STS: the
     * certificate is checked and the result logged, but not enforced. The
     * system's CA store gives the check a meaning, and a missing store only
     * makes every result a failure.
     */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        ERR_clear_error();
    /*
     * Security level 1 instead of Debian's 2 keeps servers with 1024-bit
     * RSA or SHA-1 certificates reachable. The probe sends no secret, so a
     * weak key costs nothing, while a rejected one costs the verdict.
     */
    SSL_CTX_set_security_level(ctx, 1);
    /* Most MTAs close the TCP connection after QUIT without close_notify;
     * SMTP replies end themselves, so a missing alert truncates nothing. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    /* conn moves its output buffer between retries and takes partial
     * writes; idle sessions give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    *out = xcalloc(1, sizeof **out);
    (*out)->ctx = ctx;
    return ST_OK;
}

void
tls_client_free(struct tls_client *tc)
{
    if (tc == NULL)
        return;
    SSL_CTX_free(tc->ctx);
    free(tc);
}

/* Whether name can go into SNI: a host name, not an address literal. */
static bool
sni_usable(const char *name)
{
    bool has_letter = false;
    size_t len;

    if (name == NULL)
        return false;
    len = strlen(name);
    if (len == 0 || len > 253)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char ch = *p;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
            has_letter = true;
        else if (!(ch >= '0' && ch <= '9') && ch != '-' && ch != '.' &&
                 ch != '_')
            return false;
    }
    /* SNI takes host names only, no address literals (RFC 6066), and a
     * name of digits and dots only is an IPv4 literal. */
    return has_letter;
}

enum status
tls_new(struct tls_client *tc, int fd, const char *sni, struct tls **out,
        char *err, size_t errsize)
{
    struct tls *t;
    char host[254];

    *out = NULL;
    ERR_clear_error();
    t = xcalloc(1, sizeof *t);
    t->ssl = SSL_new(tc->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        take_openssl_error(err, errsize, "SSL_new failed");
        t->fatal = true;
        tls_free(t);
        return ST_EIO;
    }
    if (sni_usable(sni) && snprintf(host, sizeof host, "%s", sni) > 0) {
        size_t len = strlen(host);

        /* SNI carries the name without the root's trailing dot. */
        if (host[len - 1] == '.')
            host[len - 1] = '\0';
        if (SSL_set_tlsext_host_name(t->ssl, host) != 1)
            ERR_clear_error(); /* the handshake can go on without SNI */
    }
    SSL_set_connect_state(t->ssl);
    *out = t;
    return ST_OK;
}

void
tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL) {
        if (!t->fatal && SSL_is_init_finished(t->ssl)) {
            /* One try: the socket is non-blocking and about to close. */
            ERR_clear_error();
            (void)SSL_shutdown(t->ssl);
            ERR_clear_error();
        }
        SSL_free(t->ssl);
    }
    free(t);
}

static void
set_error(struct tls *t, const char *text)
{
    if (snprintf(t->err, sizeof t->err, "%s", text) < 0)
        t->err[0] = '\0';
}

/* Maps the result ret of an SSL call to a status and the awaited event. */
static enum status
map_result(struct tls *t, int ret, enum tls_want *want)
{
    int saved_errno = errno;
    int code = SSL_get_error(t->ssl, ret);

    *want = TLS_WANT_NONE;
    switch (code) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return ST_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        return ST_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        set_error(t, "the server ended the TLS session");
        return ST_ECLOSED;
    case SSL_ERROR_SYSCALL:
        t->fatal = true;
        ERR_clear_error();
        if (saved_errno == 0) {
            set_error(t, "connection closed");
            return ST_ECLOSED;
        }
        set_error(t, strerror(saved_errno));
        errno = saved_errno;
        return ST_EIO;
    case SSL_ERROR_SSL:
    default:
        t->fatal = true;
        take_openssl_error(t->err, sizeof t->err, "TLS protocol error");
        return ST_EPROTO;
    }
}

enum status
tls_handshake(struct tls *t, enum tls_want *want)
{
    int ret;

    ERR_clear_error();
    errno = 0;
    ret = SSL_connect(t->ssl);
    if (ret == 1) {
        *want = TLS_WANT_NONE;
        return ST_OK;
    }
    return map_result(t, ret, want);
}

enum status
tls_read(struct tls *t, char *buf, size_t size, size_t *got,
         enum tls_want *want)
{
    int ret;

    *got = 0;
    *want = TLS_WANT_NONE;
    if (size == 0)
        return ST_OK;
    ERR_clear_error();
    errno = 0;
    ret = SSL_read(t->ssl, buf, size > INT_MAX ? INT_MAX : (int)size);
    if (ret > 0) {
        *got = (size_t)ret;
        return ST_OK;
    }
    return map_result(t, ret, want);
}

bool
tls_pending(const struct tls *t)
{
    return SSL_pending(t->ssl) > 0;
}

enum status
tls_write(struct tls *t, const char *data, size_t len, size_t *put,
          enum tls_want *want)
{
    int ret;

    *put = 0;
    *want = TLS_WANT_NONE;
    if (len == 0)
        return ST_OK;
    ERR_clear_error();
    errno = 0;
    ret = SSL_write(t->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
    if (ret > 0) {
        *put = (size_t)ret;
        return ST_OK;
    }
    return map_result(t, ret, want);
}

const char *
tls_error(const struct tls *t)
{
    return t->err;
}

/* Writes the one-line form of name (or "-") into dst. */
static void
name_text(const X509_NAME *name, char *dst, size_t size)
{
    if (name == NULL || X509_NAME_oneline(name, dst, (int)size) == NULL) {
        if (snprintf(dst, size, "-") < 0)
            dst[0] = '\0';
    }
}

const char *
tls_describe(const struct tls *t, char *out, size_t size)
{
    const X509 *cert = SSL_get0_peer_certificate(t->ssl);
    long verify = SSL_get_verify_result(t->ssl);
    char subject[TLS_TEXT_MAX];
    char issuer[TLS_TEXT_MAX];
    char q_subject[LOG_QUOTE_MAX];
    char q_issuer[LOG_QUOTE_MAX];
    char q_verify[LOG_QUOTE_MAX];

    name_text(cert != NULL ? X509_get_subject_name(cert) : NULL, subject,
              sizeof subject);
    name_text(cert != NULL ? X509_get_issuer_name(cert) : NULL, issuer,
              sizeof issuer);
    if (snprintf(out, size,
                 "version=%s cipher=%s subject=%s issuer=%s verify=%s",
                 SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
                 log_quote(q_subject, sizeof q_subject, subject),
                 log_quote(q_issuer, sizeof q_issuer, issuer),
                 log_quote(q_verify, sizeof q_verify,
                           X509_verify_cert_error_string(verify))) < 0)
        out[0] = '\0';
    return out;
}
