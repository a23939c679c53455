/* SPDX-License-Identifier: MIT */
/*
 * The entry point every fuzz driver defines, in the form libFuzzer calls,
 * and a check that aborts so the fuzzer records the input.
 */
#ifndef MXPROBE_FUZZ_H
#define MXPROBE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the failed condition when cond is false. */
static inline void
fuzz_require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz: invariant broken: %s\n", what);
        abort();
    }
}

#endif
