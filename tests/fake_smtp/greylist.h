/* SPDX-License-Identifier: MIT */
/*
 * Greylisting state of fake-smtp, shared by every connection process: a
 * fixed table in anonymous shared memory, mapped before the first fork and
 * guarded by a spin lock, so a retry on a new connection sees the first
 * attempt. When the table is full the oldest entry is replaced.
 */
#ifndef FAKE_SMTP_GREYLIST_H
#define FAKE_SMTP_GREYLIST_H

#include <stdbool.h>

struct greylist;

/* Maps the shared table; returns NULL if mmap fails. */
struct greylist *greylist_new(void);

/*
 * Records key on first sight and returns true while fewer than wait_ms
 * milliseconds have passed since that first sight (so the caller answers
 * 450), false once the retry came late enough.
 */
bool greylist_check(struct greylist *gl, const char *key, long wait_ms);

#endif
