/* SPDX-License-Identifier: MIT */
/*
 * A string-keyed hash table with separate chaining. The table owns copies of
 * the keys; values are borrowed pointers that the caller frees. The
 * coordinator uses it for its domains and for the jobs entries it holds.
 */
#ifndef MXPROBE_STRMAP_H
#define MXPROBE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_node {
    struct strmap_node *next;
    uint64_t hash;
    char *key;
    void *value;
};

struct strmap {
    struct strmap_node **buckets;
    size_t n_buckets;
    size_t count;
};

/* Position of an iteration; removing the node just returned is allowed. */
struct strmap_iter {
    size_t bucket;
    struct strmap_node *next;
};

void strmap_init(struct strmap *m);
/* Frees the nodes and keys, not the values. */
void strmap_fini(struct strmap *m);

/* Returns the value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Stores value under key, replacing an older value. */
void strmap_put(struct strmap *m, const char *key, void *value);
/* Removes key and returns its value, or NULL when it was absent. */
void *strmap_remove(struct strmap *m, const char *key);

void strmap_iter_init(const struct strmap *m, struct strmap_iter *it);
/* Returns the next node, or NULL at the end. */
struct strmap_node *strmap_iter_next(const struct strmap *m,
                                     struct strmap_iter *it);

#endif
