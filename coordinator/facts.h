/* SPDX-License-Identifier: MIT */
/*
 * What DNS says about a domain's mail: its state (ok, nxdomain, null_mx,
 * no_mail_server, dns_error) and, when ok, its MX hosts with addresses. Also
 * the text forms kept in the domain hash, so a cached fact needs no DNS.
 */
#ifndef MXPROBE_FACTS_H
#define MXPROBE_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "verdict.h"

enum facts_state {
    FACTS_OK,
    FACTS_NXDOMAIN,
    FACTS_NULL_MX,
    FACTS_NO_MAIL_SERVER,
    FACTS_DNS_ERROR,
    FACTS_NSTATES
};

struct facts {
    enum facts_state state;
    struct mx_host *mx;     /* owned; hosts with at least one address */
    size_t n_mx;
    int64_t resolved_at;    /* wall ms of the lookup */
};

/* Wire names of the domain hash's state field. */
const char *facts_state_str(enum facts_state st);
bool facts_state_parse(const char *name, enum facts_state *out);

/* The direct answer for a dead domain; false for FACTS_OK. */
bool facts_reason(enum facts_state st, enum verdict_reason *out);

void facts_fini(struct facts *f);
void facts_move(struct facts *dst, struct facts *src);
/* Appends a host (copies name and ips). */
void facts_add_host(struct facts *f, const char *name, int pref,
                    const char *const *ips, size_t n_ips);

/*
 * Writes the hash fields: mx as "pref host pref host ..." and mx_ips as
 * "host=ip,ip host=ip". Returns false when they do not fit.
 */
bool facts_format_mx(const struct facts *f, char *mx, size_t mx_size,
                     char *ips, size_t ips_size);
/*
 * Parses the two fields back into f (state FACTS_OK, hosts without an
 * address dropped). Returns false when they are malformed or no host has an
 * address, and then f is left empty.
 */
bool facts_parse_mx(struct facts *f, const char *mx, const char *ips);

#endif
