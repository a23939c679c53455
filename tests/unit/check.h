/* SPDX-License-Identifier: MIT */
/*
 * A minimal assertion kit for the unit tests: every CHECK prints the failed
 * condition with its file and line and counts it, and check_exit() makes the
 * test executable fail when any check failed, so CTest reports it.
 */
#ifndef MXPROBE_TEST_CHECK_H
#define MXPROBE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

static inline void
check_record(int ok, const char *expr, const char *file, int line)
{
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    }
}

static inline void
check_record_str(const char *got, const char *want, const char *expr,
                 const char *file, int line)
{
    int ok = (got == NULL && want == NULL) ||
             (got != NULL && want != NULL && strcmp(got, want) == 0);

    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "%s:%d: check failed: %s: got \"%s\", want \"%s\"\n",
                file, line, expr, got ? got : "(null)",
                want ? want : "(null)");
    }
}

#define CHECK(cond) check_record((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_STR(got, want) \
    check_record_str((got), (want), #got, __FILE__, __LINE__)
#define CHECK_INT(got, want)                                              \
    do {                                                                  \
        long long check_got_ = (long long)(got);                          \
        long long check_want_ = (long long)(want);                        \
        check_record(check_got_ == check_want_, #got " == " #want,        \
                     __FILE__, __LINE__);                                 \
        if (check_got_ != check_want_)                                    \
            fprintf(stderr, "    got %lld, want %lld\n", check_got_,      \
                    check_want_);                                         \
    } while (0)

/* Prints the summary and returns the process exit code. */
static inline int
check_exit(const char *name)
{
    if (check_count == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures == 0 ? 0 : 1;
}

#endif
