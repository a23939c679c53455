/* SPDX-License-Identifier: MIT */
/*
 * DNS lookups (MX, A, AAAA) with c-ares on a libev loop. It owns the c-ares
 * channel, one ev_io per socket c-ares opens and one timer that drives the
 * c-ares retransmissions, and it turns each answer into a bounded record set
 * with an outcome that tells NXDOMAIN, "no records of this type", server
 * failure and timeout apart. It does not chain lookups: finding a domain's
 * mail hosts from these pieces is the caller's job.
 */
#ifndef MXPROBE_DNS_H
#define MXPROBE_DNS_H

#include <ev.h>
#include <stddef.h>

#include "codec.h"
#include "status.h"

/* Longest presentation form of an IPv4 or IPv6 address, with the NUL. */
#define DNS_IP_MAX 46
/* Longest host name in presentation form (RFC 1035 section 2.3.4), NUL. */
#define DNS_NAME_MAX 256

enum dns_type {
    DNS_TYPE_MX,
    DNS_TYPE_A,
    DNS_TYPE_AAAA,
    DNS_TYPE_NTYPES
};

enum dns_outcome {
    DNS_OK,         /* at least one record of the type */
    DNS_NXDOMAIN,   /* the name does not exist (RCODE 3) */
    DNS_NODATA,     /* the name exists but has no record of the type */
    DNS_SERVFAIL,   /* SERVFAIL, REFUSED or a broken answer, every try */
    DNS_TIMEOUT,    /* no answer within the tries */
    DNS_CANCELLED,  /* dns_free() ran before the answer came */
    DNS_NOUTCOMES
};

struct dns_mx {
    int pref;
    char host[DNS_NAME_MAX];   /* "" for a null MX target "." (RFC 7505) */
};

/*
 * The records of one lookup. MX records are sorted by preference, best
 * first, records of equal preference in a random order each time (RFC 5321
 * section 5.1), and only the best MX_HOSTS_MAX are kept; at most MX_IPS_MAX
 * addresses are kept, in the order of the answer.
 */
struct dns_answer {
    enum dns_type type;
    enum dns_outcome outcome;
    struct dns_mx mx[MX_HOSTS_MAX];
    size_t n_mx;
    char ips[MX_IPS_MAX][DNS_IP_MAX];
    size_t n_ips;
};

struct dns;

/*
 * Fires exactly once per lookup started with ST_OK, from the loop and never
 * from inside dns_query(). ans is valid only during the call; name is the
 * name that was asked for, also valid only during the call.
 */
typedef void dns_done_fn(void *arg, const char *name,
                         const struct dns_answer *ans);

/*
 * Creates a resolver on loop. servers is "ip[:port],..." or "" for the
 * system's resolv.conf servers; timeout is the first try's wait in seconds
 * (c-ares doubles it on each later round) and tries the number of tries.
 * Returns NULL with a message in err when c-ares cannot be set up or the
 * server list is invalid.
 */
struct dns *dns_new(struct ev_loop *loop, const char *servers,
                    double timeout, int tries, char *err, size_t errsize);

/*
 * Cancels every lookup and frees the resolver. Their callbacks fire with
 * DNS_CANCELLED before this returns; a lookup started from one of them
 * returns ST_EINVAL. NULL is allowed.
 */
void dns_free(struct dns *d);

/*
 * Starts a lookup of name (without a trailing dot; the search list of
 * resolv.conf is never applied). Returns ST_OK, and then cb fires exactly
 * once; or ST_EINVAL for an empty or over-long name, and then cb never
 * fires.
 */
enum status dns_query(struct dns *d, const char *name, enum dns_type type,
                      dns_done_fn *cb, void *arg);

/* Lookups started and not yet delivered to their callback. */
size_t dns_pending(const struct dns *d);

/* Short names for logs: "mx", "a", "aaaa"; "ok", "nxdomain", ... */
const char *dns_type_str(enum dns_type type);
const char *dns_outcome_str(enum dns_outcome outcome);

#endif
