/* SPDX-License-Identifier: MIT */
/*
 * Finding where a domain's mail goes, from DNS: the MX records, or the
 * domain itself as the implicit MX when it has none (RFC 5321 section 5.1),
 * then the A and AAAA records of every host. The answer is a struct facts.
 * It caches nothing; the domain table decides when to ask.
 */
#ifndef MXPROBE_RESOLVE_H
#define MXPROBE_RESOLVE_H

#include <stdbool.h>

#include "dns.h"
#include "facts.h"

/*
 * Fires exactly once per resolve_start() that returned ST_OK. facts is
 * owned by the callee (move it out with facts_move()). cancelled is true
 * when the resolver was freed first; the facts then say dns_error.
 */
typedef void resolve_done_fn(void *arg, struct facts *facts, bool cancelled);

/*
 * Starts resolving domain (an A-label name, copied). Returns ST_OK or
 * ST_EINVAL for a name DNS cannot carry, in which case cb never fires.
 */
enum status resolve_start(struct dns *dns, const char *domain,
                          resolve_done_fn *cb, void *arg);

#endif
