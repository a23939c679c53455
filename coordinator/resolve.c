/* SPDX-License-Identifier: MIT */
/*
 * One domain's lookups, chained: MX first, then A and AAAA for each MX host
 * (or for the domain when it has no MX). The outcome rules:
 *   - NXDOMAIN on the MX query: the domain does not exist;
 *   - a single MX of preference 0 with target "." (RFC 7505): null MX;
 *   - server failure or timeout on the MX query: dns_error;
 *   - no host with an address: dns_error when some host lookup failed at
 *     the server, else no_mail_server;
 *   - otherwise ok, with the hosts that have an address.
 */
#include "resolve.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct resolve_host {
    int pref;
    char name[DNS_NAME_MAX];
    char v4[MX_IPS_MAX][DNS_IP_MAX];
    size_t n_v4;
    char v6[MX_IPS_MAX][DNS_IP_MAX];
    size_t n_v6;
};

/* The context of one address query: which host it is for. */
struct resolve_query {
    struct resolve *r;
    size_t host;
};

struct resolve {
    struct dns *dns;
    char domain[DNS_NAME_MAX];
    resolve_done_fn *cb;
    void *arg;
    struct resolve_host hosts[MX_HOSTS_MAX];
    struct resolve_query queries[MX_HOSTS_MAX];
    size_t n_hosts;
    size_t outstanding;
    bool server_failed;     /* some address lookup got no usable answer */
    bool cancelled;
};

static void
resolve_finish(struct resolve *r, enum facts_state state)
{
    struct facts f;

    memset(&f, 0, sizeof f);
    f.state = state;
    if (state == FACTS_OK) {
        for (size_t i = 0; i < r->n_hosts; i++) {
            struct resolve_host *h = &r->hosts[i];
            const char *ips[MX_IPS_MAX];
            size_t n = 0;

            /* IPv4 first: most sending networks reach it. */
            for (size_t j = 0; j < h->n_v4 && n < MX_IPS_MAX; j++)
                ips[n++] = h->v4[j];
            for (size_t j = 0; j < h->n_v6 && n < MX_IPS_MAX; j++)
                ips[n++] = h->v6[j];
            if (n > 0)
                facts_add_host(&f, h->name, h->pref, ips, n);
        }
        if (f.n_mx == 0) {
            f.state = r->server_failed ? FACTS_DNS_ERROR
                                       : FACTS_NO_MAIL_SERVER;
        }
    }
    r->cb(r->arg, &f, r->cancelled);
    facts_fini(&f);
    free(r);
}

static void
resolve_on_addr(void *arg, const char *name, const struct dns_answer *ans)
{
    struct resolve_query *q = arg;
    struct resolve *r = q->r;
    struct resolve_host *h = &r->hosts[q->host];

    (void)name;
    switch (ans->outcome) {
    case DNS_OK:
        for (size_t i = 0; i < ans->n_ips; i++) {
            if (ans->type == DNS_TYPE_A && h->n_v4 < MX_IPS_MAX)
                memcpy(h->v4[h->n_v4++], ans->ips[i], DNS_IP_MAX);
            else if (ans->type == DNS_TYPE_AAAA && h->n_v6 < MX_IPS_MAX)
                memcpy(h->v6[h->n_v6++], ans->ips[i], DNS_IP_MAX);
        }
        break;
    case DNS_SERVFAIL:
    case DNS_TIMEOUT:
        r->server_failed = true;
        break;
    case DNS_CANCELLED:
        r->cancelled = true;
        r->server_failed = true;
        break;
    case DNS_NXDOMAIN:
    case DNS_NODATA:
    case DNS_NOUTCOMES:
    default:
        break;
    }
    r->outstanding--;
    if (r->outstanding == 0)
        resolve_finish(r, FACTS_OK);
}

/* Starts A and AAAA for every host; finishes at once when none starts. */
static void
resolve_start_addrs(struct resolve *r)
{
    for (size_t i = 0; i < r->n_hosts; i++) {
        r->queries[i].r = r;
        r->queries[i].host = i;
        if (dns_query(r->dns, r->hosts[i].name, DNS_TYPE_A, resolve_on_addr,
                      &r->queries[i]) == ST_OK)
            r->outstanding++;
        if (dns_query(r->dns, r->hosts[i].name, DNS_TYPE_AAAA,
                      resolve_on_addr, &r->queries[i]) == ST_OK)
            r->outstanding++;
    }
    if (r->outstanding == 0)
        resolve_finish(r, FACTS_OK);
}

static void
resolve_take_mx(struct resolve *r, const struct dns_answer *ans)
{
    for (size_t i = 0; i < ans->n_mx && r->n_hosts < MX_HOSTS_MAX; i++) {
        /* A "." target among other records breaks RFC 7505 section 3;
         * skip it and use the real hosts. */
        if (ans->mx[i].host[0] == '\0')
            continue;
        r->hosts[r->n_hosts].pref = ans->mx[i].pref;
        memcpy(r->hosts[r->n_hosts].name, ans->mx[i].host, DNS_NAME_MAX);
        r->n_hosts++;
    }
}

static void
resolve_on_mx(void *arg, const char *name, const struct dns_answer *ans)
{
    struct resolve *r = arg;

    (void)name;
    switch (ans->outcome) {
    case DNS_OK:
        if (ans->n_mx == 1 && ans->mx[0].host[0] == '\0') {
            resolve_finish(r, FACTS_NULL_MX);
            return;
        }
        resolve_take_mx(r, ans);
        if (r->n_hosts == 0) {
            resolve_finish(r, FACTS_NULL_MX);
            return;
        }
        resolve_start_addrs(r);
        return;
    case DNS_NODATA:
        /* RFC 5321 section 5.1: no MX, so the domain is its own MX. */
        r->hosts[0].pref = 0;
        memcpy(r->hosts[0].name, r->domain, DNS_NAME_MAX);
        r->n_hosts = 1;
        resolve_start_addrs(r);
        return;
    case DNS_NXDOMAIN:
        resolve_finish(r, FACTS_NXDOMAIN);
        return;
    case DNS_CANCELLED:
        r->cancelled = true;
        resolve_finish(r, FACTS_DNS_ERROR);
        return;
    case DNS_SERVFAIL:
    case DNS_TIMEOUT:
    case DNS_NOUTCOMES:
    default:
        resolve_finish(r, FACTS_DNS_ERROR);
        return;
    }
}

enum status
resolve_start(struct dns *dns, const char *domain, resolve_done_fn *cb,
              void *arg)
{
    struct resolve *r;
    size_t len = strlen(domain);
    enum status st;

    if (len == 0 || len >= DNS_NAME_MAX)
        return ST_EINVAL;
    r = xcalloc(1, sizeof *r);
    r->dns = dns;
    memcpy(r->domain, domain, len + 1);
    r->cb = cb;
    r->arg = arg;
    st = dns_query(dns, domain, DNS_TYPE_MX, resolve_on_mx, r);
    if (st != ST_OK)
        free(r);
    return st;
}
