/* SPDX-License-Identifier: MIT */
/*
 * Domains in memory. Each moves LOADING (HGETALL of its hash) -> RESOLVING
 * (DNS, only when the hash had no usable facts) -> READY, and back to
 * LOADING when its facts expire. Jobs that arrive before READY wait in the
 * domain, which is what makes one lookup serve every job of the domain.
 * In READY, the catch-all plan decides whether jobs go out now or are held
 * for the domain's single catch-all check.
 */
#include "domains.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dispatch.h"
#include "facts.h"
#include "log.h"
#include "resolve.h"
#include "xalloc.h"

#define DOMAINS_MX_TEXT_MAX 4096
#define DOMAINS_IPS_TEXT_MAX 16384

enum domain_state {
    DOMAIN_ST_LOADING,    /* HGETALL of the domain hash outstanding */
    DOMAIN_ST_RESOLVING,  /* DNS lookups outstanding */
    DOMAIN_ST_READY,      /* facts known; jobs go out or are held */
    DOMAIN_ST_NSTATES
};

static const char *const state_names[] = {
    [DOMAIN_ST_LOADING] = "loading",
    [DOMAIN_ST_RESOLVING] = "resolving",
    [DOMAIN_ST_READY] = "ready",
};

_Static_assert(sizeof state_names / sizeof state_names[0] ==
                   DOMAIN_ST_NSTATES,
               "state_names must name every state");

/* Allowed moves, one bit per next state. */
static const unsigned state_next[] = {
    [DOMAIN_ST_LOADING] = 1u << DOMAIN_ST_RESOLVING | 1u << DOMAIN_ST_READY,
    [DOMAIN_ST_RESOLVING] = 1u << DOMAIN_ST_READY,
    [DOMAIN_ST_READY] = 1u << DOMAIN_ST_LOADING,
};

struct domain {
    struct coordinator *co;
    char *name;
    enum domain_state state;
    struct facts facts;
    int64_t facts_until;        /* wall ms when the facts expire */

    enum tristate catch_all;
    bool catch_all_known;       /* a decision (maybe "unknown") is fresh */
    int64_t catch_all_until;    /* wall ms when that decision expires */
    bool check_pending;         /* a catch-all check is in progress */
    int64_t check_started;      /* wall ms */
    int64_t check_deadline;     /* wall ms: held jobs go out after this */
    bool poll_outstanding;

    struct job *jobs;           /* waiting or held, in arrival order */
    size_t n_jobs;
    size_t cap_jobs;
    int64_t last_used;          /* wall ms */
    bool dirty;                 /* on co->dirty, waiting for the flush */
    struct domain *next_dirty;
};

/* The fields of a domain hash that matter here, borrowed from the reply. */
struct domain_hash {
    const char *state;
    const char *mx;
    const char *mx_ips;
    const char *catch_all;
    int64_t resolved_at;
    int64_t checked_at;
    int64_t catchall_pending;
};

static void domain_pump(struct domain *d);

static void
domain_set_state(struct domain *d, enum domain_state next)
{
    struct log_ctx lctx = {.domain = d->name};

    /* Checked in release builds too: a wrong move is a bug that would
     * strand the domain's jobs, so stop loudly instead. */
    if ((state_next[d->state] & (1u << next)) == 0) {
        log_crit(&lctx, "ev=bad_state_move from=%s to=%s",
                 state_names[d->state], state_names[next]);
        abort();
    }
    log_debug(&lctx, "ev=state from=%s to=%s jobs=%zu",
              state_names[d->state], state_names[next], d->n_jobs);
    d->state = next;
}

/*
 * How long an "unknown" catch-all decision (the random address got a 4xx,
 * or no answer) is trusted: the first delay of the retry schedule, since
 * the check failed for the same passing reasons as a probe that is retried
 * then. DOMAINS_CATCHALL_UNKNOWN_TTL when the schedule is empty.
 */
static int64_t
domain_unknown_ttl_ms(const struct coordinator *co)
{
    if (co->cfg->n_retry_delays > 0 && co->cfg->retry_delays[0] > 0)
        return co->cfg->retry_delays[0] * 1000LL;
    return DOMAINS_CATCHALL_UNKNOWN_TTL * 1000LL;
}

static void
domain_key(const struct domain *d, char *buf, size_t size)
{
    keys_name(&d->co->keys, KEY_DOMAIN, d->name, buf, size);
}

static struct domain *
domain_new(struct coordinator *co, const char *name)
{
    struct domain *d = xcalloc(1, sizeof *d);

    d->co = co;
    d->name = xstrdup(name);
    d->state = DOMAIN_ST_LOADING;
    d->catch_all = TRI_UNKNOWN;
    strmap_put(&co->domains, name, d);
    return d;
}

static void
domain_free(struct domain *d)
{
    for (size_t i = 0; i < d->n_jobs; i++) {
        coordinator_release_entry(d->co, d->jobs[i].entry, false);
        codec_job_fini(&d->jobs[i]);
    }
    free(d->jobs);
    facts_fini(&d->facts);
    free(d->name);
    free(d);
}

/* Writes a random local part that reads like a person's mailbox name, such
 * as "kalomi.dabergan47": a catch-all check must not look like a probe. */
static bool
domain_random_local(char *out, size_t size)
{
    static const char *const syllables[] = {
        "ka", "lo", "mi", "re", "san", "to", "vi", "nel",
        "da", "mor", "li", "ber", "ta", "pe", "ro", "gan",
    };
    unsigned char rnd[8];
    ssize_t got = -1;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    int n;

    if (fd >= 0) {
        got = read(fd, rnd, sizeof rnd);
        close(fd);
    }
    if (got != (ssize_t)sizeof rnd)
        return false;
    n = snprintf(out, size, "%s%s%s.%s%s%s%02u", syllables[rnd[0] & 15],
                 syllables[rnd[1] & 15], syllables[rnd[2] & 15],
                 syllables[rnd[3] & 15], syllables[rnd[4] & 15],
                 syllables[rnd[5] & 15], (unsigned)(rnd[6] % 100));
    return n > 0 && (size_t)n < size;
}

/* Hands jobs[0..n) to dispatch in items of at most batch_size jobs. */
static void
domain_send_items(struct domain *d, size_t n, const char *first_local,
                  enum tristate flag)
{
    size_t batch = (size_t)d->co->cfg->batch_size;
    size_t off = 0;

    if (batch == 0 || batch > PROBE_JOBS_MAX)
        batch = PROBE_JOBS_MAX;
    while (off < n) {
        size_t k = n - off < batch ? n - off : batch;

        dispatch_probe_take(d->co, d->name, &d->facts, d->jobs + off, k,
                            off == 0 ? first_local : NULL, flag);
        off += k;
    }
    memmove(d->jobs, d->jobs + n, (d->n_jobs - n) * sizeof *d->jobs);
    d->n_jobs -= n;
}

static void
domain_mark_check(struct domain *d, int64_t now)
{
    char key[KEYS_NAME_MAX];

    d->check_pending = true;
    d->check_started = now;
    d->check_deadline = now + (int64_t)(d->co->cfg->catchall_wait * 1000.0);
    domain_key(d, key, sizeof key);
    /* Lets a restarted coordinator see that the check is under way. */
    redis_conn_commandf(d->co->rc_cmd, NULL, NULL,
                        "HSET %s catchall_pending %lld", key, (long long)now);
}

/* READY and live: send, hold, or start the catch-all check. */
static void
domain_plan(struct domain *d, int64_t now)
{
    struct log_ctx lctx = {.domain = d->name};
    char local[64];

    if (d->catch_all_known && d->catch_all == TRI_UNKNOWN &&
        now >= d->catch_all_until)
        d->catch_all_known = false;
    if (d->catch_all_known) {
        domain_send_items(d, d->n_jobs, NULL, d->catch_all);
        return;
    }
    if (d->check_pending) {
        if (now < d->check_deadline)
            return;
        log_warn(&lctx, "ev=catchall_wait_expired held=%zu", d->n_jobs);
        d->check_pending = false;
        d->catch_all_known = true;
        d->catch_all = TRI_UNKNOWN;
        d->catch_all_until = now + domain_unknown_ttl_ms(d->co);
        domain_send_items(d, d->n_jobs, NULL, TRI_UNKNOWN);
        return;
    }
    if (!domain_random_local(local, sizeof local)) {
        log_warn(&lctx, "ev=catchall_skipped st=eio detail=no_random");
        domain_send_items(d, d->n_jobs, NULL, TRI_UNKNOWN);
        return;
    }
    /* The first item tests the catch-all; the rest wait for its answer. */
    domain_mark_check(d, now);
    log_debug(&lctx, "ev=catchall_check held=%zu", d->n_jobs);
    domain_send_items(d, d->n_jobs < (size_t)d->co->cfg->batch_size
                             ? d->n_jobs
                             : (size_t)d->co->cfg->batch_size,
                      local, TRI_UNKNOWN);
}

static void
domain_pump(struct domain *d)
{
    int64_t now = clock_wall_ms();
    enum verdict_reason reason;

    d->last_used = now;
    if (d->state != DOMAIN_ST_READY || d->n_jobs == 0 || d->co->closing)
        return;
    if (facts_reason(d->facts.state, &reason)) {
        size_t n = d->n_jobs;

        d->n_jobs = 0;
        dispatch_answer_take(d->co, d->jobs, n, reason, d->name);
        return;
    }
    domain_plan(d, now);
}

static int64_t
domain_facts_ttl_ms(const struct coordinator *co, enum facts_state st)
{
    if (st == FACTS_DNS_ERROR)
        return DOMAINS_DNS_ERROR_TTL * 1000LL;
    return co->cfg->domain_ttl * 1000LL;
}

static void
domain_store(struct domain *d)
{
    char key[KEYS_NAME_MAX];
    char mx[DOMAINS_MX_TEXT_MAX];
    char ips[DOMAINS_IPS_TEXT_MAX];
    struct redis_args a;

    domain_key(d, key, sizeof key);
    redis_args_init(&a);
    redis_args_add_str(&a, "HSET");
    redis_args_add_str(&a, key);
    redis_args_add_str(&a, "state");
    redis_args_add_str(&a, facts_state_str(d->facts.state));
    redis_args_add_str(&a, "resolved_at");
    redis_args_add_int(&a, d->facts.resolved_at);
    redis_args_add_str(&a, "checked_at");
    redis_args_add_int(&a, d->facts.resolved_at);
    if (d->facts.state == FACTS_OK &&
        facts_format_mx(&d->facts, mx, sizeof mx, ips, sizeof ips)) {
        redis_args_add_str(&a, "mx");
        redis_args_add_str(&a, mx);
        redis_args_add_str(&a, "mx_ips");
        redis_args_add_str(&a, ips);
    }
    redis_conn_command_args(d->co->rc_cmd, NULL, NULL, &a);
    redis_args_fini(&a);
    if (d->facts.state != FACTS_OK)
        redis_conn_commandf(d->co->rc_cmd, NULL, NULL, "HDEL %s mx mx_ips",
                            key);
    redis_conn_commandf(d->co->rc_cmd, NULL, NULL, "EXPIRE %s %d", key,
                        d->co->cfg->domain_ttl);
}

static void
domain_on_resolved(void *arg, struct facts *facts, bool cancelled)
{
    struct domain *d = arg;
    struct log_ctx lctx = {.domain = d->name};

    if (cancelled || d->co->closing)
        return;
    facts->resolved_at = clock_wall_ms();
    facts_move(&d->facts, facts);
    d->facts_until = d->facts.resolved_at +
                     domain_facts_ttl_ms(d->co, d->facts.state);
    if (d->facts.state == FACTS_DNS_ERROR)
        log_warn(&lctx, "ev=dns_failed state=dns_error jobs=%zu", d->n_jobs);
    else
        log_info(&lctx, "ev=resolved state=%s mx=%zu jobs=%zu",
                 facts_state_str(d->facts.state), d->facts.n_mx, d->n_jobs);
    domain_store(d);
    domain_set_state(d, DOMAIN_ST_READY);
    domain_pump(d);
}

static void
domain_resolve(struct domain *d)
{
    struct log_ctx lctx = {.domain = d->name};

    domain_set_state(d, DOMAIN_ST_RESOLVING);
    if (resolve_start(d->co->dns, d->name, domain_on_resolved, d) == ST_OK)
        return;
    /* Only a name DNS cannot carry gets here; address_parse() bounds
     * domains below that, so treat it as a lookup failure. */
    log_warn(&lctx, "ev=dns_failed st=einval");
    facts_fini(&d->facts);
    d->facts.state = FACTS_DNS_ERROR;
    d->facts.resolved_at = clock_wall_ms();
    d->facts_until = d->facts.resolved_at + DOMAINS_DNS_ERROR_TTL * 1000LL;
    domain_set_state(d, DOMAIN_ST_READY);
    domain_pump(d);
}

static int64_t
domain_parse_ms(const char *text)
{
    char *end;
    long long v;

    if (text == NULL)
        return 0;
    v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0)
        return 0;
    return (int64_t)v;
}

static void
domain_hash_read(const redisReply *r, struct domain_hash *h)
{
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        const redisReply *v = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "state") == 0)
            h->state = v->str;
        else if (strcmp(k->str, "mx") == 0)
            h->mx = v->str;
        else if (strcmp(k->str, "mx_ips") == 0)
            h->mx_ips = v->str;
        else if (strcmp(k->str, "catch_all") == 0)
            h->catch_all = v->str;
        else if (strcmp(k->str, "resolved_at") == 0)
            h->resolved_at = domain_parse_ms(v->str);
        else if (strcmp(k->str, "checked_at") == 0)
            h->checked_at = domain_parse_ms(v->str);
        else if (strcmp(k->str, "catchall_pending") == 0)
            h->catchall_pending = domain_parse_ms(v->str);
    }
}

/* Applies the catch-all part of the hash. */
static void
domain_load_catchall(struct domain *d, const struct domain_hash *h,
                     int64_t now)
{
    int64_t wait_ms = (int64_t)(d->co->cfg->catchall_wait * 1000.0);

    if (h->catch_all != NULL && strcmp(h->catch_all, "1") == 0) {
        d->catch_all = TRI_YES;
        d->catch_all_known = true;
    } else if (h->catch_all != NULL && strcmp(h->catch_all, "0") == 0) {
        d->catch_all = TRI_NO;
        d->catch_all_known = true;
    } else if (h->catch_all != NULL && strcmp(h->catch_all, "unknown") == 0 &&
               now - h->checked_at < domain_unknown_ttl_ms(d->co)) {
        d->catch_all = TRI_UNKNOWN;
        d->catch_all_known = true;
        d->catch_all_until = h->checked_at + domain_unknown_ttl_ms(d->co);
    }
    if (!d->catch_all_known && !d->check_pending &&
        h->catchall_pending > 0 && now - h->catchall_pending < wait_ms) {
        /* Another run of the coordinator started a check: wait for it. */
        d->check_pending = true;
        d->check_started = h->catchall_pending;
        d->check_deadline = h->catchall_pending + wait_ms;
    }
}

/* Takes usable facts from the hash; false when DNS must be asked. */
static bool
domain_load_facts(struct domain *d, const struct domain_hash *h, int64_t now)
{
    enum facts_state st;
    int64_t at = h->resolved_at > 0 ? h->resolved_at : h->checked_at;

    if (h->state == NULL || !facts_state_parse(h->state, &st))
        return false;
    if (st == FACTS_DNS_ERROR && now - at >= DOMAINS_DNS_ERROR_TTL * 1000LL)
        return false;
    facts_fini(&d->facts);
    if (st == FACTS_OK) {
        if (h->mx == NULL || h->mx_ips == NULL ||
            !facts_parse_mx(&d->facts, h->mx, h->mx_ips))
            return false;
    }
    d->facts.state = st;
    d->facts.resolved_at = at;
    d->facts_until = (at > 0 ? at : now) + domain_facts_ttl_ms(d->co, st);
    return true;
}

static void
domain_on_load(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct domain *d = arg;
    struct log_ctx lctx = {.domain = d->name};
    struct domain_hash h;
    int64_t now = clock_wall_ms();

    (void)rc;
    if (d->co->closing)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        /* DNS works without Redis; the answer is written once it is back. */
        domain_resolve(d);
        return;
    }
    domain_hash_read(reply, &h);
    domain_load_catchall(d, &h, now);
    if (!domain_load_facts(d, &h, now)) {
        domain_resolve(d);
        return;
    }
    log_debug(&lctx, "ev=facts_cached state=%s mx=%zu",
              facts_state_str(d->facts.state), d->facts.n_mx);
    domain_set_state(d, DOMAIN_ST_READY);
    domain_pump(d);
}

static void
domain_load(struct domain *d)
{
    char key[KEYS_NAME_MAX];

    domain_key(d, key, sizeof key);
    if (redis_conn_commandf(d->co->rc_cmd, domain_on_load, d, "HGETALL %s",
                            key) != ST_OK)
        domain_resolve(d);
}

static void
domain_append(struct domain *d, struct job *job)
{
    if (d->n_jobs == d->cap_jobs) {
        d->cap_jobs = d->cap_jobs == 0 ? 16 : d->cap_jobs * 2;
        d->jobs = xrealloc(d->jobs, d->cap_jobs * sizeof *d->jobs);
    }
    d->jobs[d->n_jobs++] = *job;
    memset(job, 0, sizeof *job);
}

void
domains_add_job_take(struct coordinator *co, const char *domain,
                     struct job *job)
{
    struct domain *d = strmap_get(&co->domains, domain);

    if (d == NULL) {
        d = domain_new(co, domain);
        domain_append(d, job);
        domain_load(d);
        return;
    }
    domain_append(d, job);
    if (d->state == DOMAIN_ST_READY && !d->check_pending &&
        clock_wall_ms() >= d->facts_until) {
        domain_set_state(d, DOMAIN_ST_LOADING);
        domain_load(d);
        return;
    }
    /* Not pumped per job: jobs of one domain read together go out
     * together, in as few items (SMTP sessions) as batch_size allows. */
    if (!d->dirty) {
        d->dirty = true;
        d->next_dirty = co->dirty;
        co->dirty = d;
    }
}

void
domains_flush(struct coordinator *co)
{
    while (co->dirty != NULL) {
        struct domain *d = co->dirty;

        co->dirty = d->next_dirty;
        d->next_dirty = NULL;
        d->dirty = false;
        domain_pump(d);
    }
}

void
domains_on_catchall(struct coordinator *co, const char *domain,
                    enum tristate flag, int64_t checked_at)
{
    struct domain *d = strmap_get(&co->domains, domain);
    struct log_ctx lctx = {.domain = domain};
    int64_t now = clock_wall_ms();

    (void)checked_at;
    if (d == NULL)
        return;
    log_debug(&lctx, "ev=catchall_decided catch_all=%d held=%zu", (int)flag,
              d->n_jobs);
    d->catch_all = flag;
    d->catch_all_known = true;
    d->catch_all_until = now + domain_unknown_ttl_ms(d->co);
    d->check_pending = false;
    domain_pump(d);
}

static void
domain_on_poll(struct redis_conn *rc, redisReply *reply, void *arg)
{
    struct domain *d = arg;
    const char *flag;
    int64_t checked_at;

    (void)rc;
    d->poll_outstanding = false;
    if (d->co->closing || !d->check_pending || reply == NULL ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    flag = reply->element[0]->str;
    checked_at = reply->element[1]->type == REDIS_REPLY_STRING
                     ? domain_parse_ms(reply->element[1]->str)
                     : 0;
    if (strcmp(flag, "1") == 0)
        domains_on_catchall(d->co, d->name, TRI_YES, checked_at);
    else if (strcmp(flag, "0") == 0)
        domains_on_catchall(d->co, d->name, TRI_NO, checked_at);
    else if (strcmp(flag, "unknown") == 0 && checked_at >= d->check_started)
        domains_on_catchall(d->co, d->name, TRI_UNKNOWN, checked_at);
}

void
domains_poll_catchall(struct coordinator *co)
{
    struct strmap_iter it;
    struct strmap_node *n;
    char key[KEYS_NAME_MAX];

    strmap_iter_init(&co->domains, &it);
    while ((n = strmap_iter_next(&co->domains, &it)) != NULL) {
        struct domain *d = n->value;

        if (!d->check_pending || d->poll_outstanding)
            continue;
        domain_key(d, key, sizeof key);
        if (redis_conn_commandf(co->rc_cmd, domain_on_poll, d,
                                "HMGET %s catch_all checked_at",
                                key) == ST_OK)
            d->poll_outstanding = true;
    }
}

static bool
domain_is_idle(const struct domain *d, int64_t now)
{
    return d->state == DOMAIN_ST_READY && d->n_jobs == 0 && !d->dirty &&
           !d->check_pending && !d->poll_outstanding &&
           now - d->last_used >= DOMAINS_IDLE_TTL * 1000LL;
}

void
domains_tick(struct coordinator *co)
{
    struct strmap_iter it;
    struct strmap_node *n;
    int64_t now = clock_wall_ms();

    domains_flush(co);
    strmap_iter_init(&co->domains, &it);
    while ((n = strmap_iter_next(&co->domains, &it)) != NULL) {
        struct domain *d = n->value;

        if (d->check_pending && now >= d->check_deadline) {
            if (d->n_jobs > 0)
                domain_pump(d);
            else
                d->check_pending = false;
        }
        if (domain_is_idle(d, now)) {
            strmap_remove(&co->domains, d->name);
            domain_free(d);
        }
    }
}

void
domains_free_all(struct coordinator *co)
{
    struct strmap_iter it;
    struct strmap_node *n;

    co->dirty = NULL;
    strmap_iter_init(&co->domains, &it);
    while ((n = strmap_iter_next(&co->domains, &it)) != NULL) {
        struct domain *d = n->value;

        strmap_remove(&co->domains, d->name);
        domain_free(d);
    }
}
