/* SPDX-License-Identifier: MIT */
/*
 * A replay main() for compilers without libFuzzer: it runs the driver once
 * per file named on the command line, which is how a saved crash input is
 * checked again.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

/* Inputs above this size are cut; the parsers reject far shorter input. */
#define FUZZ_MAIN_INPUT_MAX (1024 * 1024)

static int
replay_file(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        perror(path);
        return 1;
    }
    n = fread(buf, 1, FUZZ_MAIN_INPUT_MAX, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int
main(int argc, char **argv)
{
    uint8_t *buf = malloc(FUZZ_MAIN_INPUT_MAX);
    int failed = 0;

    if (buf == NULL)
        return 1;
    for (int i = 1; i < argc; i++)
        failed |= replay_file(argv[i], buf);
    free(buf);
    return failed;
}
