# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Counting checks for the tests that talk to the lab servers directly
# (lab_selftest.sh, lab_mta2.sh, coordinator_direct.sh). Each check adds to
# PASSED or FAILED and prints only failures, on standard error. The test
# prints both counts at the end and exits 1 when FAILED is not 0. Not a test
# itself: CTest runs only *.sh files.

PASSED=0
FAILED=0

pass()
{
    PASSED=$((PASSED + 1))
}

# fail MESSAGE: counts a failed check and prints MESSAGE.
fail()
{
    FAILED=$((FAILED + 1))
    echo "FAIL: $*" >&2
}

# expect_eq WHAT GOT WANT
expect_eq()
{
    if [ "$2" = "$3" ]; then
        pass
    else
        fail "$1: got '$2', expected '$3'"
    fi
}

# expect_match WHAT TEXT REGEX: some line of TEXT matches the extended
# regular expression REGEX.
expect_match()
{
    if grep -Eq -- "$3" <<<"$2"; then
        pass
    else
        fail "$1: no line matches /$3/ in:"
        sed 's/^/    /' <<<"$2" >&2
    fi
}

# expect_no_match WHAT TEXT REGEX: no line of TEXT matches REGEX.
expect_no_match()
{
    if grep -Eq -- "$3" <<<"$2"; then
        fail "$1: unexpected line matching /$3/ in:"
        sed 's/^/    /' <<<"$2" >&2
    else
        pass
    fi
}
