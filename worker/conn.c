/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking TCP client connections on libev. Watchers are stopped before
 * their descriptor is closed, because libev keeps watching a descriptor
 * number that the kernel may hand out again. Errors that happen inside a
 * conn_* call are returned or deferred to the loop, so an owner's handler
 * never runs inside its own call. Once TLS is on, OpenSSL may need the
 * socket to be writable in order to read (and the reverse), so both
 * watchers then run one pump that retries the write and then reads.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void conn_on_read(struct ev_loop *loop, ev_io *w, int revents);
static void conn_on_write(struct ev_loop *loop, ev_io *w, int revents);
static void conn_on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_on_defer(struct ev_loop *loop, ev_timer *w, int revents);

void
conn_init(struct conn *c, struct ev_loop *loop, int port,
          const struct conn_handlers *h, void *arg)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->h = h;
    c->arg = arg;
    c->port = port;
    c->fd = -1;
    ev_init(&c->rio, conn_on_read);
    c->rio.data = c;
    ev_init(&c->wio, conn_on_write);
    c->wio.data = c;
    ev_init(&c->timer, conn_on_timer);
    c->timer.data = c;
    ev_init(&c->defer, conn_on_defer);
    c->defer.data = c;
}

void
conn_fini(struct conn *c)
{
    conn_close(c);
    ev_timer_stop(c->loop, &c->timer);
}

bool
conn_ip_is_v6(const char *ip)
{
    return strchr(ip, ':') != NULL;
}

/* Fills ss from ip and port; false when ip is not an address. */
static bool
make_sockaddr(const char *ip, int port, struct sockaddr_storage *ss,
              socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (conn_ip_is_v6(ip)) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    return inet_pton(AF_INET, ip, &s4->sin_addr) == 1;
}

static int
open_socket(int family)
{
    int fd = socket(family, SOCK_STREAM, 0);
    int flags;

    if (fd < 0)
        return -1;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int err = errno;

        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Reports a failure of conn_connect() on the next loop turn. */
static void
defer_failure(struct conn *c, int err)
{
    conn_close(c);
    c->defer_err = err;
    ev_timer_set(&c->defer, 0., 0.);
    ev_timer_start(c->loop, &c->defer);
}

static int
bind_source(int fd, const char *source_ip)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (!make_sockaddr(source_ip, 0, &ss, &len)) {
        errno = EINVAL;
        return -1;
    }
    return bind(fd, (struct sockaddr *)&ss, len);
}

int
conn_check_source(const char *source_ip)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;
    int err = 0;

    if (!make_sockaddr(source_ip, 0, &ss, &len))
        return EINVAL;
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        err = errno;
    close(fd);
    return err;
}

void
conn_connect(struct conn *c, const char *ip, const char *source_ip)
{
    struct sockaddr_storage ss;
    socklen_t len;

    conn_close(c);
    if (!make_sockaddr(ip, c->port, &ss, &len)) {
        defer_failure(c, EINVAL);
        return;
    }
    c->fd = open_socket(ss.ss_family);
    if (c->fd < 0) {
        defer_failure(c, errno);
        return;
    }
    if (source_ip != NULL && bind_source(c->fd, source_ip) < 0) {
        defer_failure(c, errno);
        return;
    }
    /* Success or EINPROGRESS both end in a writable socket whose SO_ERROR
     * tells the outcome, so one path handles both. */
    if (connect(c->fd, (struct sockaddr *)&ss, len) < 0 &&
        errno != EINPROGRESS) {
        defer_failure(c, errno);
        return;
    }
    c->connecting = true;
    ev_io_set(&c->wio, c->fd, EV_WRITE);
    ev_io_start(c->loop, &c->wio);
}

void
conn_close(struct conn *c)
{
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->defer);
    /* SSL_free() before close(): the session may still write an alert to
     * the descriptor. */
    tls_free(c->tls);
    c->tls = NULL;
    c->handshaking = false;
    c->write_waits = false;
    c->read_waits = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->connecting = false;
    c->out_len = 0;
    c->gen++;
}

void
conn_set_timer(struct conn *c, double seconds)
{
    ev_timer_stop(c->loop, &c->timer);
    if (seconds <= 0)
        return;
    ev_timer_set(&c->timer, seconds, 0.);
    ev_timer_start(c->loop, &c->timer);
}

/* Starts the write watcher when a TLS call waits for a writable socket,
 * stops it otherwise. The read watcher stays on while TLS is up. */
static void
tls_arm_write(struct conn *c)
{
    if (c->write_waits || c->read_waits) {
        if (!ev_is_active(&c->wio)) {
            ev_io_set(&c->wio, c->fd, EV_WRITE);
            ev_io_start(c->loop, &c->wio);
        }
    } else {
        ev_io_stop(c->loop, &c->wio);
    }
}

/* Writes as much of the output buffer as TLS takes. A write waiting for
 * input is retried by the read watcher's pump. */
static enum status
flush_tls(struct conn *c)
{
    enum tls_want want = TLS_WANT_NONE;
    enum status st = ST_OK;
    size_t put;

    while (c->out_len > 0) {
        st = tls_write(c->tls, c->out, c->out_len, &put, &want);
        if (st != ST_OK)
            break;
        memmove(c->out, c->out + put, c->out_len - put);
        c->out_len -= put;
    }
    c->write_waits = st == ST_AGAIN && want == TLS_WANT_WRITE;
    tls_arm_write(c);
    return st == ST_AGAIN ? ST_OK : st;
}

/* Writes as much of the output buffer as the socket takes. */
static enum status
flush(struct conn *c)
{
    if (c->tls != NULL)
        return flush_tls(c);
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return ST_EIO;
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    if (c->out_len > 0) {
        ev_io_set(&c->wio, c->fd, EV_WRITE);
        ev_io_start(c->loop, &c->wio);
    } else {
        ev_io_stop(c->loop, &c->wio);
    }
    return ST_OK;
}

enum status
conn_send(struct conn *c, const char *data, size_t len)
{
    if (c->fd < 0 || c->connecting || c->handshaking)
        return ST_ECLOSED;
    if (len > sizeof c->out - c->out_len)
        return ST_EPROTO;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return flush(c);
}

static void
finish_connect(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        conn_close(c);
        c->h->on_connect_failed(c->arg, ST_EIO, err);
        return;
    }
    c->connecting = false;
    ev_io_stop(c->loop, &c->wio);
    ev_io_set(&c->rio, c->fd, EV_READ);
    ev_io_start(c->loop, &c->rio);
    c->h->on_connected(c->arg);
}

enum status
conn_starttls(struct conn *c, struct tls_client *tc, const char *sni)
{
    char err[TLS_TEXT_MAX];
    enum status st;

    if (c->fd < 0 || c->connecting)
        return ST_ECLOSED;
    if (c->tls != NULL || c->out_len > 0 || c->h->on_tls_done == NULL)
        return ST_EINVAL;
    st = tls_new(tc, c->fd, sni, &c->tls, err, sizeof err);
    if (st != ST_OK)
        return st;
    /* The first step runs from the loop, so on_tls_done never fires
     * inside this call; a connected socket is writable at once. */
    c->handshaking = true;
    ev_io_stop(c->loop, &c->rio);
    ev_io_set(&c->wio, c->fd, EV_WRITE);
    ev_io_start(c->loop, &c->wio);
    return ST_OK;
}

/* Arms the one watcher a handshake step waits for. */
static void
arm_handshake(struct conn *c, enum tls_want want)
{
    if (want == TLS_WANT_WRITE) {
        ev_io_stop(c->loop, &c->rio);
        if (!ev_is_active(&c->wio)) {
            ev_io_set(&c->wio, c->fd, EV_WRITE);
            ev_io_start(c->loop, &c->wio);
        }
        return;
    }
    ev_io_stop(c->loop, &c->wio);
    if (!ev_is_active(&c->rio)) {
        ev_io_set(&c->rio, c->fd, EV_READ);
        ev_io_start(c->loop, &c->rio);
    }
}

static void
handshake_step(struct conn *c)
{
    char info[CONN_TLS_INFO_MAX];
    enum tls_want want;
    enum status st;

    st = tls_handshake(c->tls, &want);
    if (st == ST_AGAIN) {
        arm_handshake(c, want);
        return;
    }
    if (st != ST_OK) {
        if (snprintf(info, sizeof info, "%s", tls_error(c->tls)) < 0)
            info[0] = '\0';
        conn_close(c);
        c->h->on_tls_done(c->arg, st, info);
        return;
    }
    c->handshaking = false;
    tls_describe(c->tls, info, sizeof info);
    arm_handshake(c, TLS_WANT_READ);
    c->h->on_tls_done(c->arg, ST_OK, info);
}

/* Closes the connection after a failed TLS read or write and reports it. */
static void
fail_io(struct conn *c, enum status st)
{
    int err = st == ST_EIO ? errno : 0;

    conn_close(c);
    c->h->on_closed(c->arg, st, err);
}

/*
 * Runs on either socket event once TLS is up: retries queued output, then
 * reads. One record may hold more than a chunk, and OpenSSL keeps the rest
 * decrypted while the socket stays quiet, so reading goes on while
 * tls_pending() says so; that is at most one record (16 KiB) per event.
 */
static void
tls_pump(struct conn *c)
{
    unsigned gen = c->gen;
    char buf[CONN_READ_CHUNK];
    enum tls_want want;
    enum status st;
    size_t got;

    st = flush(c);
    if (st != ST_OK) {
        fail_io(c, st);
        return;
    }
    do {
        st = tls_read(c->tls, buf, sizeof buf, &got, &want);
        if (st == ST_AGAIN) {
            c->read_waits = want == TLS_WANT_WRITE;
            tls_arm_write(c);
            return;
        }
        if (st != ST_OK) {
            fail_io(c, st);
            return;
        }
        c->h->on_data(c->arg, buf, got);
        if (c->gen != gen)
            return; /* the handler closed or replaced the connection */
    } while (tls_pending(c->tls));
    c->read_waits = false;
    tls_arm_write(c);
}

static void
conn_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    int err;

    (void)loop;
    (void)revents;
    if (c->connecting) {
        finish_connect(c);
        return;
    }
    if (c->handshaking) {
        handshake_step(c);
        return;
    }
    if (c->tls != NULL) {
        tls_pump(c);
        return;
    }
    if (flush(c) != ST_OK) {
        err = errno;
        conn_close(c);
        c->h->on_closed(c->arg, ST_EIO, err);
    }
}

static void
conn_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    char buf[CONN_READ_CHUNK];
    ssize_t n;
    int err;

    (void)loop;
    (void)revents;
    if (c->handshaking) {
        handshake_step(c);
        return;
    }
    if (c->tls != NULL) {
        tls_pump(c);
        return;
    }
    n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0) {
        c->h->on_data(c->arg, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    err = n < 0 ? errno : 0;
    conn_close(c);
    c->h->on_closed(c->arg, n == 0 ? ST_ECLOSED : ST_EIO, err);
}

static void
conn_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    c->h->on_timeout(c->arg);
}

static void
conn_on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    c->h->on_connect_failed(c->arg, c->defer_err == EINVAL ? ST_EINVAL : ST_EIO,
                            c->defer_err);
}
