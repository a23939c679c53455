/* SPDX-License-Identifier: MIT */
/*
 * Greylisting table in MAP_SHARED memory. Connection processes are forked
 * from one parent, so an anonymous shared mapping made before the first
 * fork is visible to all of them; a C11 atomic_flag is lock-free on every
 * platform and so works across processes, unlike a plain pthread mutex.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS is not in POSIX 2008 */
#include "greylist.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define GREYLIST_SLOTS 4096
#define GREYLIST_KEY_MAX 300

struct greylist_entry {
    char key[GREYLIST_KEY_MAX];
    long long first_ms;          /* CLOCK_MONOTONIC; 0: free slot */
};

struct greylist {
    atomic_flag lock;
    struct greylist_entry slots[GREYLIST_SLOTS];
};

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

struct greylist *
greylist_new(void)
{
    void *p = mmap(NULL, sizeof(struct greylist), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct greylist *gl;

    if (p == MAP_FAILED)
        return NULL;
    gl = p;
    memset(gl, 0, sizeof *gl);
    atomic_flag_clear(&gl->lock);
    return gl;
}

static void
greylist_lock(struct greylist *gl)
{
    struct timespec pause = { 0, 100000 };

    while (atomic_flag_test_and_set(&gl->lock))
        nanosleep(&pause, NULL);
}

/* Returns the slot holding key, else a free slot, else the oldest one. */
static struct greylist_entry *
greylist_slot(struct greylist *gl, const char *key, bool *found)
{
    struct greylist_entry *victim = &gl->slots[0];
    size_t i;

    *found = false;
    for (i = 0; i < GREYLIST_SLOTS; i++) {
        struct greylist_entry *e = &gl->slots[i];

        if (e->first_ms != 0 && strcmp(e->key, key) == 0) {
            *found = true;
            return e;
        }
        if (victim->first_ms != 0 &&
            (e->first_ms == 0 || e->first_ms < victim->first_ms))
            victim = e;
    }
    return victim;
}

bool
greylist_check(struct greylist *gl, const char *key, long wait_ms)
{
    struct greylist_entry *e;
    char k[GREYLIST_KEY_MAX];
    long long now = now_ms();
    bool found;
    bool wait;
    size_t n = strlen(key);

    /* Long keys are cut here, before both the lookup and the store. */
    if (n >= sizeof k)
        n = sizeof k - 1;
    memcpy(k, key, n);
    k[n] = '\0';

    greylist_lock(gl);
    e = greylist_slot(gl, k, &found);
    if (!found) {
        memcpy(e->key, k, n + 1);
        e->first_ms = now;
    }
    wait = now - e->first_ms < wait_ms;
    atomic_flag_clear(&gl->lock);
    return wait;
}
