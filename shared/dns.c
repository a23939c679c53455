/* SPDX-License-Identifier: MIT */
/*
 * c-ares 1.18.1 driven by libev. c-ares reports the sockets it wants watched
 * through ARES_OPT_SOCK_STATE_CB; each gets an ev_io that calls
 * ares_process_fd(). One ev_timer, re-armed from ares_timeout() after every
 * call into c-ares, makes c-ares resend and give up on time. Finished lookups
 * go through a queue flushed from a zero-delay timer, so a callback never
 * runs inside dns_query() or inside c-ares.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <sys/select.h> /* fd_set and struct timeval, which ares.h uses */
#include <sys/time.h>
#include <ares.h>
#include <assert.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "xalloc.h"

struct dns_sock {
    struct dns *dns;
    ares_socket_t fd;
    ev_io io;
    struct dns_sock *next;
};

struct dns_lookup {
    struct dns *dns;
    struct dns_lookup *next;   /* in the delivery queue */
    char name[DNS_NAME_MAX];
    dns_done_fn *cb;
    void *arg;
    struct dns_answer ans;
};

struct dns {
    struct ev_loop *loop;
    ares_channel channel;
    bool channel_ok;
    ev_timer timeout;          /* c-ares retransmissions and give-ups */
    ev_timer flush;            /* delivers finished lookups */
    struct dns_sock *socks;
    struct dns_lookup *done_head;
    struct dns_lookup *done_tail;
    size_t pending;
    bool closing;
    uint64_t rng;              /* xorshift64 state for the MX shuffle */
};

static const char *const type_names[] = {
    [DNS_TYPE_MX] = "mx",
    [DNS_TYPE_A] = "a",
    [DNS_TYPE_AAAA] = "aaaa",
};

_Static_assert(sizeof type_names / sizeof type_names[0] == DNS_TYPE_NTYPES,
               "type_names must name every type");

static const char *const outcome_names[] = {
    [DNS_OK] = "ok",
    [DNS_NXDOMAIN] = "nxdomain",
    [DNS_NODATA] = "nodata",
    [DNS_SERVFAIL] = "servfail",
    [DNS_TIMEOUT] = "timeout",
    [DNS_CANCELLED] = "cancelled",
};

_Static_assert(sizeof outcome_names / sizeof outcome_names[0] ==
                   DNS_NOUTCOMES,
               "outcome_names must name every outcome");

const char *
dns_type_str(enum dns_type type)
{
    if ((unsigned)type >= DNS_TYPE_NTYPES)
        return "?";
    return type_names[type];
}

const char *
dns_outcome_str(enum dns_outcome outcome)
{
    if ((unsigned)outcome >= DNS_NOUTCOMES)
        return "?";
    return outcome_names[outcome];
}

static void
dns_rearm(struct dns *d)
{
    struct timeval tv;
    struct timeval *next;

    ev_timer_stop(d->loop, &d->timeout);
    if (d->closing)
        return;
    next = ares_timeout(d->channel, NULL, &tv);
    if (next == NULL)
        return;
    ev_timer_set(&d->timeout, (double)next->tv_sec + next->tv_usec / 1e6,
                 0.0);
    ev_timer_start(d->loop, &d->timeout);
}

static void
dns_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_sock *s = w->data;
    struct dns *d = s->dns;
    ares_socket_t rfd = ARES_SOCKET_BAD;
    ares_socket_t wfd = ARES_SOCKET_BAD;

    (void)loop;
    if (revents & EV_READ)
        rfd = s->fd;
    if (revents & EV_WRITE)
        wfd = s->fd;
    /* c-ares may close this socket inside the call, which frees s: only d
     * is used from here on. */
    ares_process_fd(d->channel, rfd, wfd);
    dns_rearm(d);
}

static void
dns_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns *d = w->data;

    (void)loop;
    (void)revents;
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_rearm(d);
}

/* Called by c-ares whenever a socket opens, changes interest or closes. */
static void
dns_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns *d = data;
    struct dns_sock **link = &d->socks;
    struct dns_sock *s;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

    while (*link != NULL && (*link)->fd != fd)
        link = &(*link)->next;
    s = *link;

    if (events == 0) {
        if (s != NULL) {
            ev_io_stop(d->loop, &s->io);
            *link = s->next;
            free(s);
        }
        return;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->dns = d;
        s->fd = fd;
        ev_io_init(&s->io, dns_on_io, fd, events);
        s->io.data = s;
        s->next = d->socks;
        d->socks = s;
    } else {
        ev_io_stop(d->loop, &s->io);
        ev_io_set(&s->io, fd, events);
    }
    ev_io_start(d->loop, &s->io);
}

static void
dns_deliver(struct dns_lookup *l)
{
    struct dns *d = l->dns;

    assert(d->pending > 0);
    d->pending--;
    l->cb(l->arg, l->name, &l->ans);
    free(l);
}

static void
dns_on_flush(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns *d = w->data;
    struct dns_lookup *l;

    (void)loop;
    (void)revents;
    /* Callbacks may start lookups that finish into the queue at once (a
     * synchronous c-ares failure); they go out on the next flush. */
    l = d->done_head;
    d->done_head = NULL;
    d->done_tail = NULL;
    while (l != NULL) {
        struct dns_lookup *next = l->next;

        dns_deliver(l);
        l = next;
    }
}

static void
dns_queue_done(struct dns_lookup *l)
{
    struct dns *d = l->dns;

    l->next = NULL;
    if (d->done_tail != NULL)
        d->done_tail->next = l;
    else
        d->done_head = l;
    d->done_tail = l;
    if (!d->closing && !ev_is_active(&d->flush)) {
        ev_timer_set(&d->flush, 0.0, 0.0);
        ev_timer_start(d->loop, &d->flush);
    }
}

/* Keeps the best MX_HOSTS_MAX records, sorted by preference; records of
 * equal preference keep the answer's order here. */
static void
dns_take_mx(struct dns_answer *ans, const struct ares_mx_reply *list)
{
    for (const struct ares_mx_reply *r = list; r != NULL; r = r->next) {
        size_t len = strlen(r->host);
        size_t at = ans->n_mx;

        if (len >= DNS_NAME_MAX)
            continue;
        while (at > 0 && ans->mx[at - 1].pref > r->priority)
            at--;
        if (at >= MX_HOSTS_MAX)
            continue;
        if (ans->n_mx == MX_HOSTS_MAX)
            ans->n_mx--;
        memmove(&ans->mx[at + 1], &ans->mx[at],
                (ans->n_mx - at) * sizeof ans->mx[0]);
        ans->mx[at].pref = r->priority;
        memcpy(ans->mx[at].host, r->host, len + 1);
        ans->n_mx++;
    }
}

static uint64_t
dns_random(struct dns *d)
{
    /* xorshift64: load spreading only, nothing secret depends on it. */
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

/*
 * RFC 5321 section 5.1: MX records of equal preference are to be tried in
 * random order, so that senders spread their load over them. Servers and
 * caches often return records in a fixed order or merely rotate them. So
 * each run of equal preference gets a Fisher-Yates shuffle of its own, and
 * the order between different preferences stays.
 */
static void
dns_shuffle_mx(struct dns *d, struct dns_answer *ans)
{
    size_t start = 0;

    while (start < ans->n_mx) {
        size_t end = start + 1;

        while (end < ans->n_mx && ans->mx[end].pref == ans->mx[start].pref)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + (size_t)(dns_random(d) % (i - start + 1));
            struct dns_mx tmp = ans->mx[i];

            ans->mx[i] = ans->mx[j];
            ans->mx[j] = tmp;
        }
        start = end;
    }
}

static int
dns_parse_mx(struct dns *d, struct dns_answer *ans, const unsigned char *abuf,
             int alen)
{
    struct ares_mx_reply *list = NULL;
    int rc = ares_parse_mx_reply(abuf, alen, &list);

    if (rc != ARES_SUCCESS)
        return rc;
    dns_take_mx(ans, list);
    ares_free_data(list);
    dns_shuffle_mx(d, ans);
    return ans->n_mx > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static int
dns_parse_a(struct dns_answer *ans, const unsigned char *abuf, int alen)
{
    struct ares_addrttl addrs[MX_IPS_MAX];
    int n = MX_IPS_MAX;
    int rc = ares_parse_a_reply(abuf, alen, NULL, addrs, &n);

    if (rc != ARES_SUCCESS)
        return rc;
    for (int i = 0; i < n && ans->n_ips < MX_IPS_MAX; i++) {
        if (inet_ntop(AF_INET, &addrs[i].ipaddr, ans->ips[ans->n_ips],
                      DNS_IP_MAX) != NULL)
            ans->n_ips++;
    }
    return ans->n_ips > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static int
dns_parse_aaaa(struct dns_answer *ans, const unsigned char *abuf, int alen)
{
    struct ares_addr6ttl addrs[MX_IPS_MAX];
    int n = MX_IPS_MAX;
    int rc = ares_parse_aaaa_reply(abuf, alen, NULL, addrs, &n);

    if (rc != ARES_SUCCESS)
        return rc;
    for (int i = 0; i < n && ans->n_ips < MX_IPS_MAX; i++) {
        if (inet_ntop(AF_INET6, &addrs[i].ip6addr, ans->ips[ans->n_ips],
                      DNS_IP_MAX) != NULL)
            ans->n_ips++;
    }
    return ans->n_ips > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static enum dns_outcome
dns_outcome_of(int rc)
{
    switch (rc) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENOTFOUND:
        return DNS_NXDOMAIN;
    case ARES_ENODATA:
        return DNS_NODATA;
    case ARES_ETIMEOUT:
        return DNS_TIMEOUT;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return DNS_CANCELLED;
    default:
        /* ESERVFAIL, EREFUSED, ECONNREFUSED, EFORMERR, EBADRESP and the
         * parse errors of a malformed answer: the server did not give a
         * usable answer, which says nothing about the domain. */
        return DNS_SERVFAIL;
    }
}

static void
dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
              int alen)
{
    struct dns_lookup *l = arg;
    struct dns_answer *ans = &l->ans;

    (void)timeouts;
    if (status == ARES_SUCCESS && abuf != NULL) {
        switch (ans->type) {
        case DNS_TYPE_MX:
            status = dns_parse_mx(l->dns, ans, abuf, alen);
            break;
        case DNS_TYPE_A:
            status = dns_parse_a(ans, abuf, alen);
            break;
        case DNS_TYPE_AAAA:
            status = dns_parse_aaaa(ans, abuf, alen);
            break;
        case DNS_TYPE_NTYPES:
        default:
            status = ARES_EBADQUERY;
            break;
        }
    }
    ans->outcome = dns_outcome_of(status);
    if (ans->outcome != DNS_OK) {
        ans->n_mx = 0;
        ans->n_ips = 0;
    }
    dns_queue_done(l);
}

static int
dns_set_options(struct dns *d, double timeout, int tries)
{
    struct ares_options opts;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_SOCK_STATE_CB;

    memset(&opts, 0, sizeof opts);
    /* No search list and no HOSTALIASES: the name asked is the name sent. */
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opts.timeout = (int)(timeout * 1000.0 + 0.5);
    if (opts.timeout < 1)
        opts.timeout = 1;
    opts.tries = tries < 1 ? 1 : tries;
    opts.sock_state_cb = dns_on_sock_state;
    opts.sock_state_cb_data = d;
    return ares_init_options(&d->channel, &opts, mask);
}

/* Seeds the shuffle from /dev/urandom, or from the clock and the process id
 * when it cannot be read. The seed is never zero, because xorshift would
 * stay at zero forever. */
static void
dns_seed(struct dns *d)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    uint64_t seed = 0;

    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
            seed = 0;
        close(fd);
    }
    if (seed == 0)
        seed = (uint64_t)clock_mono_ms() ^ ((uint64_t)getpid() << 32);
    d->rng = seed != 0 ? seed : 1;
}

struct dns *
dns_new(struct ev_loop *loop, const char *servers, double timeout,
        int tries, char *err, size_t errsize)
{
    struct dns *d;
    int rc;

    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errsize, "c-ares library init failed: %s",
                 ares_strerror(rc));
        return NULL;
    }
    d = xcalloc(1, sizeof *d);
    d->loop = loop;
    dns_seed(d);
    ev_init(&d->timeout, dns_on_timeout);
    d->timeout.data = d;
    ev_init(&d->flush, dns_on_flush);
    d->flush.data = d;

    rc = dns_set_options(d, timeout, tries);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errsize, "c-ares channel init failed: %s",
                 ares_strerror(rc));
        goto out_free;
    }
    d->channel_ok = true;
    /* Only valid while no query is outstanding, which holds here. */
    if (servers != NULL && servers[0] != '\0') {
        rc = ares_set_servers_ports_csv(d->channel, servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errsize, "invalid DNS server list \"%s\": %s",
                     servers, ares_strerror(rc));
            goto out_free;
        }
    }
    return d;

out_free:
    dns_free(d);
    return NULL;
}

void
dns_free(struct dns *d)
{
    struct dns_lookup *l;

    if (d == NULL)
        return;
    d->closing = true;
    ev_timer_stop(d->loop, &d->timeout);
    ev_timer_stop(d->loop, &d->flush);
    /* ares_destroy() ends every query with ARES_EDESTRUCTION; they join the
     * queue and are delivered below, so each callback still fires once. */
    if (d->channel_ok)
        ares_destroy(d->channel);
    while (d->done_head != NULL) {
        l = d->done_head;
        d->done_head = l->next;
        dns_deliver(l);
    }
    d->done_tail = NULL;
    while (d->socks != NULL) {
        struct dns_sock *s = d->socks;

        ev_io_stop(d->loop, &s->io);
        d->socks = s->next;
        free(s);
    }
    free(d);
    ares_library_cleanup();
}

enum status
dns_query(struct dns *d, const char *name, enum dns_type type,
          dns_done_fn *cb, void *arg)
{
    static const int rr_types[] = {
        [DNS_TYPE_MX] = 15,    /* RFC 1035 section 3.2.2 */
        [DNS_TYPE_A] = 1,
        [DNS_TYPE_AAAA] = 28,  /* RFC 3596 section 2.1 */
    };
    struct dns_lookup *l;
    size_t len = strlen(name);

    if (d->closing || len == 0 || len >= DNS_NAME_MAX ||
        (unsigned)type >= DNS_TYPE_NTYPES)
        return ST_EINVAL;

    l = xcalloc(1, sizeof *l);
    l->dns = d;
    memcpy(l->name, name, len + 1);
    l->cb = cb;
    l->arg = arg;
    l->ans.type = type;
    d->pending++;
    /* ns_c_in = 1. The callback may run inside this call when c-ares fails
     * at once; it only queues the lookup, so the caller sees it later. */
    ares_query(d->channel, name, 1, rr_types[type], dns_on_answer, l);
    dns_rearm(d);
    return ST_OK;
}

size_t
dns_pending(const struct dns *d)
{
    return d->pending;
}
