/* SPDX-License-Identifier: MIT */
/*
 * Domain facts and their text form in the domain hash. The parser treats
 * the hash as untrusted input: anyone with access to Redis can write it, so
 * every count and length is bounded before it reaches a probe item.
 */
#include "facts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "xalloc.h"

static const char *const state_names[] = {
    [FACTS_OK] = "ok",
    [FACTS_NXDOMAIN] = "nxdomain",
    [FACTS_NULL_MX] = "null_mx",
    [FACTS_NO_MAIL_SERVER] = "no_mail_server",
    [FACTS_DNS_ERROR] = "dns_error",
};

_Static_assert(sizeof state_names / sizeof state_names[0] == FACTS_NSTATES,
               "state_names must name every state");

const char *
facts_state_str(enum facts_state st)
{
    if ((unsigned)st >= FACTS_NSTATES)
        return "?";
    return state_names[st];
}

bool
facts_state_parse(const char *name, enum facts_state *out)
{
    for (int i = 0; i < FACTS_NSTATES; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum facts_state)i;
            return true;
        }
    }
    return false;
}

bool
facts_reason(enum facts_state st, enum verdict_reason *out)
{
    switch (st) {
    case FACTS_NXDOMAIN:
        *out = VR_DOMAIN_NOT_FOUND;
        return true;
    case FACTS_NULL_MX:
        *out = VR_NULL_MX;
        return true;
    case FACTS_NO_MAIL_SERVER:
        *out = VR_NO_MAIL_SERVER;
        return true;
    case FACTS_DNS_ERROR:
        *out = VR_DNS_ERROR;
        return true;
    case FACTS_OK:
    case FACTS_NSTATES:
    default:
        return false;
    }
}

void
facts_fini(struct facts *f)
{
    for (size_t i = 0; i < f->n_mx; i++) {
        for (size_t j = 0; j < f->mx[i].n_ips; j++)
            free(f->mx[i].ips[j]);
        free(f->mx[i].ips);
        free(f->mx[i].name);
    }
    free(f->mx);
    memset(f, 0, sizeof *f);
}

void
facts_move(struct facts *dst, struct facts *src)
{
    facts_fini(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

void
facts_add_host(struct facts *f, const char *name, int pref,
               const char *const *ips, size_t n_ips)
{
    struct mx_host *h;

    if (f->n_mx >= MX_HOSTS_MAX)
        return;
    if (n_ips > MX_IPS_MAX)
        n_ips = MX_IPS_MAX;
    f->mx = xrealloc(f->mx, (f->n_mx + 1) * sizeof *f->mx);
    h = &f->mx[f->n_mx++];
    h->name = xstrdup(name);
    h->pref = pref;
    h->n_ips = n_ips;
    h->ips = xcalloc(n_ips > 0 ? n_ips : 1, sizeof *h->ips);
    for (size_t i = 0; i < n_ips; i++)
        h->ips[i] = xstrdup(ips[i]);
}

/* Appends text to buf at *used; false when it does not fit. */
static bool
facts_append(char *buf, size_t size, size_t *used, const char *text)
{
    int n = snprintf(buf + *used, size - *used, "%s", text);

    if (n < 0 || (size_t)n >= size - *used)
        return false;
    *used += (size_t)n;
    return true;
}

bool
facts_format_mx(const struct facts *f, char *mx, size_t mx_size, char *ips,
                size_t ips_size)
{
    size_t mx_used = 0;
    size_t ips_used = 0;
    char pref[16];

    mx[0] = '\0';
    ips[0] = '\0';
    for (size_t i = 0; i < f->n_mx; i++) {
        const struct mx_host *h = &f->mx[i];
        const char *sep = i > 0 ? " " : "";

        snprintf(pref, sizeof pref, "%d", h->pref);
        if (!facts_append(mx, mx_size, &mx_used, sep) ||
            !facts_append(mx, mx_size, &mx_used, pref) ||
            !facts_append(mx, mx_size, &mx_used, " ") ||
            !facts_append(mx, mx_size, &mx_used, h->name))
            return false;
        if (!facts_append(ips, ips_size, &ips_used, sep) ||
            !facts_append(ips, ips_size, &ips_used, h->name) ||
            !facts_append(ips, ips_size, &ips_used, "="))
            return false;
        for (size_t j = 0; j < h->n_ips; j++) {
            if (!facts_append(ips, ips_size, &ips_used, j > 0 ? "," : "") ||
                !facts_append(ips, ips_size, &ips_used, h->ips[j]))
                return false;
        }
    }
    return true;
}

/* Copies the next space-separated token of *p into out; false when none
 * is left or it is too long. */
static bool
facts_token(const char **p, char sep, char *out, size_t size)
{
    const char *s = *p;
    size_t len = 0;

    while (*s == sep)
        s++;
    while (s[len] != '\0' && s[len] != sep)
        len++;
    if (len == 0 || len >= size)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    *p = s + len;
    return true;
}

/* Finds host's address list in the mx_ips text and splits it into ips. */
static size_t
facts_find_ips(const char *text, const char *host,
               char ips[][DNS_IP_MAX], size_t max)
{
    char entry[DNS_NAME_MAX + MX_IPS_MAX * DNS_IP_MAX];
    const char *p = text;
    size_t hlen = strlen(host);
    size_t n = 0;

    while (facts_token(&p, ' ', entry, sizeof entry)) {
        const char *list;

        if (strncmp(entry, host, hlen) != 0 || entry[hlen] != '=')
            continue;
        list = entry + hlen + 1;
        while (n < max && facts_token(&list, ',', ips[n], DNS_IP_MAX))
            n++;
        break;
    }
    return n;
}

bool
facts_parse_mx(struct facts *f, const char *mx, const char *ips_text)
{
    char pref_text[16];
    char host[DNS_NAME_MAX];
    char ips[MX_IPS_MAX][DNS_IP_MAX];
    const char *ptrs[MX_IPS_MAX];
    const char *p = mx;

    memset(f, 0, sizeof *f);
    while (facts_token(&p, ' ', pref_text, sizeof pref_text)) {
        char *end;
        long pref = strtol(pref_text, &end, 10);
        size_t n;

        if (*end != '\0' || pref < 0 || pref > 65535 ||
            !facts_token(&p, ' ', host, sizeof host))
            goto out_invalid;
        n = facts_find_ips(ips_text, host, ips, MX_IPS_MAX);
        for (size_t i = 0; i < n; i++)
            ptrs[i] = ips[i];
        if (n > 0)
            facts_add_host(f, host, (int)pref, ptrs, n);
    }
    if (f->n_mx == 0)
        goto out_invalid;
    f->state = FACTS_OK;
    return true;

out_invalid:
    facts_fini(f);
    return false;
}
