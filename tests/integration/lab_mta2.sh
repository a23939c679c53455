#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Second real MTA of the lab: starts Exim (lab_exim), checks its RCPT
# replies for a known mailbox, an unknown one, a foreign domain and a
# recipient over recipients_max, and feeds each live reply to
# "mxprobe classify". Also checks that Exim refuses DATA, queues nothing
# and is stopped by the lab's cleanup. Usage: lab_mta2.sh BUILD_DIR
# (the classifier is BUILD_DIR/client/mxprobe). Runs as root.

set -uo pipefail

# shellcheck source=../../scripts/lab/lab.sh
source "$(dirname "$0")/../../scripts/lab/lab.sh"
# shellcheck source=expect_lib.bash
source "$(dirname "$0")/expect_lib.bash"

# Prints reply number N (1 is the greeting) of a lab_smtp_talk transcript.
# A reply ends at its first line whose code is followed by a space or by
# nothing (RFC 5321, section 4.2.1).
nth_reply()
{
    awk -v want="$1" '
        { n = count + 1; if (n == want) print }
        /^[0-9][0-9][0-9]( |$)/ { count++ }
    '
}

# Sends EHLO, MAIL FROM:<> and one RCPT per address, then QUIT; prints the
# whole transcript.
talk_rcpts()
{
    local ip=$1 cmds=("EHLO probe.lab.test" "MAIL FROM:<>") addr
    shift
    for addr in "$@"; do
        cmds+=("RCPT TO:<$addr>")
    done
    cmds+=("QUIT")
    lab_smtp_talk "$ip" "${cmds[@]}"
}

# Pipes a reply through "mxprobe classify" (stage rcpt) and prints its
# key=value line.
classify()
{
    sed 's/$/\r/' <<<"$1" | "$MXPROBE" classify --stage rcpt 2>&1
}

# check_live NAME REPLY REPLY_REGEX [status=X reason=Y | !status=X]...
# Checks a live reply against REPLY_REGEX, prints it with its verdict, and
# checks that the verdict has every key=value given (or lacks each !k=v).
check_live()
{
    local name=$1 reply=$2 regex=$3 verdict want
    shift 3
    expect_match "$name: reply" "$reply" "$regex"
    verdict=$(classify "$reply")
    printf 'live %s: %s\n    -> %s\n' "$name" "$reply" "$verdict"
    for want in "$@"; do
        if [[ "$want" == '!'* ]]; then
            expect_no_match "$name: verdict" "$verdict" "(^| )${want#!}( |$)"
        else
            expect_match "$name: verdict" "$verdict" "(^| )$want( |$)"
        fi
    done
}

check_rcpt_replies()
{
    local out
    lab_exim 127.0.0.2 "a.test,b.test" "alice@a.test bob@b.test"
    out=$(talk_rcpts 127.0.0.2 alice@a.test nobody@a.test carol@c.test \
        Bob@B.TEST)
    expect_match "greeting" "$(nth_reply 1 <<<"$out")" \
        "^220 mx-127\.0\.0\.2\.lab\.test ESMTP Exim 4\."
    expect_match "EHLO" "$(nth_reply 2 <<<"$out")" "^250 HELP$"
    expect_no_match "no STARTTLS" "$(nth_reply 2 <<<"$out")" STARTTLS
    expect_eq "null sender" "$(nth_reply 3 <<<"$out")" "250 OK"
    check_live "existing mailbox" "$(nth_reply 4 <<<"$out")" "^250 " \
        status=deliverable reason=accepted
    check_live "unknown mailbox" "$(nth_reply 5 <<<"$out")" "^550 " \
        status=undeliverable reason=mailbox_not_found
    check_live "foreign domain" "$(nth_reply 6 <<<"$out")" \
        "^550 relay not permitted$" '!status=undeliverable' \
        '!status=deliverable'
    expect_match "mailbox lookup ignores case" "$(nth_reply 7 <<<"$out")" \
        "^250 "
    expect_match "QUIT" "$(nth_reply 8 <<<"$out")" "^221 "

    lab_wait_log "$LAB_EXIM_LOG" "closed by QUIT" 5 ||
        fail "Exim mainlog has no 'closed by QUIT' line"
    expect_eq "log: unknown mailbox rejected" \
        "$(lab_count "$LAB_EXIM_LOG" 'rejected RCPT <nobody@a\.test>: ')" 1
    expect_eq "log: foreign domain rejected" \
        "$(lab_count "$LAB_EXIM_LOG" \
            'rejected RCPT <carol@c\.test>: relay not permitted')" 1
    expect_eq "lab_exim_log names the mainlog" \
        "$(lab_exim_log 127.0.0.2)" "$LAB_EXIM_LOG"
}

# With recipients_max = 2, Exim replies to the third RCPT of a transaction
# with a temporary error, which says nothing about the mailbox.
check_too_many_recipients()
{
    local out
    LAB_EXIM_RECIPIENTS_MAX=2 lab_exim 127.0.0.3 c.test \
        "c1@c.test,c2@c.test,c3@c.test"
    out=$(talk_rcpts 127.0.0.3 c1@c.test c2@c.test c3@c.test)
    expect_match "first RCPT under the limit" "$(nth_reply 4 <<<"$out")" \
        "^250 "
    check_live "too many recipients" "$(nth_reply 6 <<<"$out")" "^452 " \
        '!status=undeliverable' '!status=deliverable' retry=yes
}

# DATA is refused and nothing reaches the spool, so the lab Exim can never
# deliver or relay a message.
check_no_delivery()
{
    local out
    out=$(lab_smtp_talk 127.0.0.2 "HELO probe.lab.test" \
        "MAIL FROM:<probe@lab.test>" "RCPT TO:<alice@a.test>" "DATA" \
        "Subject: must not arrive" "" "." "QUIT")
    expect_match "DATA refused" "$(nth_reply 5 <<<"$out")" \
        "^550 lab: DATA disabled$"
    expect_eq "log: no message received" \
        "$(lab_count "$LAB_EXIM_LOG" ' <= ')" 0
    expect_eq "spool: no message files" \
        "$(find "$LAB_DIR/exim-127.0.0.2/spool" -path '*input*' -type f |
            wc -l)" 0
}

check_ipv6()
{
    local out
    if ! ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
        echo "NOTE: ::1 not configured on lo; IPv6 check skipped" >&2
        return 0
    fi
    lab_exim ::1 "v6.test" "six@v6.test"
    out=$(talk_rcpts ::1 six@v6.test seven@v6.test)
    expect_match "IPv6 known mailbox" "$(nth_reply 4 <<<"$out")" "^250 "
    expect_match "IPv6 unknown mailbox" "$(nth_reply 5 <<<"$out")" "^550 "
    expect_eq "IPv6 log path" "$(lab_exim_log ::1)" "$LAB_EXIM_LOG"
}

# A child test that starts Exim and exits must leave no Exim behind.
check_cleanup()
{
    local info="$LAB_DIR/child.info" pid port
    LAB_DIR='' bash -c '
        source "$1/scripts/lab/lab.sh"
        lab_init "$2"
        lab_exim 127.0.0.4 d.test dan@d.test
        echo "$LAB_PIDS $LAB_SMTP_PORT" >"$3"
    ' child "$LAB_ROOT" "$LAB_BUILD_DIR" "$info" 2>&1
    read -r pid port <"$info" || true
    if [ -z "${pid:-}" ] || [ -z "${port:-}" ]; then
        fail "child test did not start Exim"
        return
    fi
    if kill -0 "$pid" 2>/dev/null; then
        fail "Exim (pid $pid) still runs after the child's cleanup"
    else
        pass
    fi
    if lab_wait_listen 127.0.0.4 "$port" tcp 0; then
        fail "127.0.0.4:$port still listens after the child's cleanup"
    else
        pass
    fi
}

lab_init "${1:-}"
MXPROBE=$LAB_BUILD_DIR/client/mxprobe
[ -x "$MXPROBE" ] || lab_fail "$MXPROBE not found; build the mxprobe target"
[ -x "$LAB_EXIM" ] || lab_fail "Exim binary $LAB_EXIM not found; run" \
    "scripts/install-deps.sh as root or set LAB_EXIM"
echo "lab_mta2: $("$LAB_EXIM" -C /dev/null -bV 2>/dev/null | head -n 1)" \
    "from $(cat "$(dirname "$LAB_EXIM")/../../.unpacked-from" 2>/dev/null)"

check_rcpt_replies
check_too_many_recipients
check_no_delivery
check_ipv6
check_cleanup

echo "lab_mta2: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
