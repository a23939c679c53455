/* SPDX-License-Identifier: MIT */
/* String-keyed hash table: FNV-1a hashes, chains, doubling at load 1. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define STRMAP_INITIAL 64

static uint64_t
strmap_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

void
strmap_init(struct strmap *m)
{
    m->n_buckets = STRMAP_INITIAL;
    m->buckets = xcalloc(m->n_buckets, sizeof *m->buckets);
    m->count = 0;
}

void
strmap_fini(struct strmap *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct strmap_node *n = m->buckets[i];

        while (n != NULL) {
            struct strmap_node *next = n->next;

            free(n->key);
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->n_buckets = 0;
    m->count = 0;
}

static struct strmap_node **
strmap_find(const struct strmap *m, const char *key, uint64_t h)
{
    struct strmap_node **link = &m->buckets[h % m->n_buckets];

    while (*link != NULL &&
           ((*link)->hash != h || strcmp((*link)->key, key) != 0))
        link = &(*link)->next;
    return link;
}

static void
strmap_grow(struct strmap *m)
{
    size_t n = m->n_buckets * 2;
    struct strmap_node **b = xcalloc(n, sizeof *b);

    for (size_t i = 0; i < m->n_buckets; i++) {
        struct strmap_node *node = m->buckets[i];

        while (node != NULL) {
            struct strmap_node *next = node->next;

            node->next = b[node->hash % n];
            b[node->hash % n] = node;
            node = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
    struct strmap_node *n = *strmap_find(m, key, strmap_hash(key));

    return n != NULL ? n->value : NULL;
}

void
strmap_put(struct strmap *m, const char *key, void *value)
{
    uint64_t h = strmap_hash(key);
    struct strmap_node **link = strmap_find(m, key, h);
    struct strmap_node *n;

    if (*link != NULL) {
        (*link)->value = value;
        return;
    }
    n = xcalloc(1, sizeof *n);
    n->hash = h;
    n->key = xstrdup(key);
    n->value = value;
    *link = n;
    m->count++;
    if (m->count > m->n_buckets)
        strmap_grow(m);
}

void *
strmap_remove(struct strmap *m, const char *key)
{
    struct strmap_node **link = strmap_find(m, key, strmap_hash(key));
    struct strmap_node *n = *link;
    void *value;

    if (n == NULL)
        return NULL;
    *link = n->next;
    value = n->value;
    free(n->key);
    free(n);
    m->count--;
    return value;
}

void
strmap_iter_init(const struct strmap *m, struct strmap_iter *it)
{
    it->bucket = 0;
    it->next = m->n_buckets > 0 ? m->buckets[0] : NULL;
}

struct strmap_node *
strmap_iter_next(const struct strmap *m, struct strmap_iter *it)
{
    struct strmap_node *n;

    while (it->next == NULL) {
        it->bucket++;
        if (it->bucket >= m->n_buckets)
            return NULL;
        it->next = m->buckets[it->bucket];
    }
    n = it->next;
    it->next = n->next;
    return n;
}
