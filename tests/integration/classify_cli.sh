#!/usr/bin/env bash
# "mxprobe classify" end to end: replies go in on standard input, the
# key=value line and the exit code come out. No server is needed.
# Usage: classify_cli.sh BUILD_DIR (run from the repository root).
set -uo pipefail

mxprobe="${1:?usage: classify_cli.sh BUILD_DIR}/client/mxprobe"
failures=0
checks=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# expect_line NAME INPUT WANTED-SUBSTRING... -- [classify options]
expect_line() {
    local name=$1 input=$2 out rc
    shift 2
    local wants=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        wants+=("$1")
        shift
    done
    [ "$#" -gt 0 ] && shift
    out=$(printf '%b' "$input" | "$mxprobe" classify "$@" 2>&1)
    rc=$?
    checks=$((checks + 1))
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit code $rc, want 0; output: $out"
        return
    fi
    for want in "${wants[@]}"; do
        case " $out " in
        *" $want "*) ;;
        *) fail "$name: output lacks \"$want\": $out" ;;
        esac
    done
}

# expect_error NAME INPUT WANTED-STDERR-SUBSTRING [classify options]
expect_error() {
    local name=$1 input=$2 want=$3 out rc
    shift 3
    out=$(printf '%b' "$input" | "$mxprobe" classify "$@" 2>&1 >/dev/null)
    rc=$?
    checks=$((checks + 1))
    if [ "$rc" -ne 2 ]; then
        fail "$name: exit code $rc, want 2"
    fi
    case "$out" in
    *"$want"*) ;;
    *) fail "$name: error lacks \"$want\": $out" ;;
    esac
}

if [ ! -x "$mxprobe" ]; then
    echo "FAIL: $mxprobe is missing; build the mxprobe target first"
    exit 1
fi

expect_line "gmail multi-line 5.1.1" \
    '550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Learn more at https://support.google.com/mail/?p=NoSuchUser\r\n' \
    status=undeliverable reason=mailbox_not_found enhanced=5.1.1 \
    category=mailbox_not_found retry=no stage=rcpt
expect_line "same reply at MAIL names no mailbox" \
    '550 5.1.1 User unknown\r\n' \
    status=unknown reason=sender_rejected category=sender_rejected \
    stage=mail -- --stage mail
expect_line "spamhaus block" \
    '550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org\r\n' \
    status=unknown reason=blocked category=blocked rule=text_blocked
expect_line "no enhanced code, bare LF, no final newline" \
    '550 Requested action not taken: mailbox unavailable' \
    status=undeliverable reason=mailbox_not_found enhanced=- code=550
expect_line "greylisting is retried" \
    '451 4.7.1 Greylisting in action, please come back later\n' \
    status=unknown reason=greylisted category=greylisted retry=yes
expect_line "452 over quota is risky" \
    '452 4.2.2 The email account that you tried to reach is over quota.\r\n' \
    status=risky reason=mailbox_full category=mailbox_full
expect_line "452 too many recipients" \
    '452 4.5.3 Error: too many recipients\r\n' \
    reason=rate_limited category=rate_limited retry=yes
expect_line "greeting refusal" \
    '554 No SMTP service here\r\n' \
    status=unknown reason=blocked stage=greeting -- -s greeting
expect_line "multi-line EHLO" \
    '250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n' \
    status=deliverable reason=accepted category=accepted -- --stage=ehlo
expect_line "trailing blank line is ignored" \
    '250 OK\r\n\r\n' status=deliverable

expect_error "garbage input" 'hello there\n' "not an SMTP reply"
expect_error "empty input" '' "input ends before the reply does"
expect_error "unfinished multi-line reply" '550-5.1.1 first line\r\n' \
    "input ends before the reply does"
expect_error "two replies" '250 OK\r\n250 OK\r\n' "more than one reply"
expect_error "codes differ between lines" '550-a\r\n551 b\r\n' \
    "not an SMTP reply"
expect_error "invalid stage" '250 OK\r\n' 'invalid --stage "data"' \
    --stage data
expect_error "connect is not a reply stage" '250 OK\r\n' \
    'invalid --stage "connect"' --stage connect
expect_error "positional argument" '250 OK\r\n' 'unexpected argument' \
    extra
expect_error "unknown short option" '250 OK\r\n' 'mxprobe help classify' -x

checks=$((checks + 1))
long=$(head -c 60000 /dev/zero | tr '\0' 'a')
out=$(printf '550 %s\r\n' "$long" | "$mxprobe" classify 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 2 ] || fail "oversized input: exit code $rc, want 2"
case "$out" in
*"longer than"*) ;;
*) fail "oversized input: error lacks \"longer than\": $out" ;;
esac

checks=$((checks + 1))
out=$("$mxprobe" classify --help </dev/null)
rc=$?
[ "$rc" -eq 0 ] || fail "--help: exit code $rc, want 0"
case "$out" in
*"Usage: mxprobe classify"*) ;;
*) fail "--help: no usage line: $out" ;;
esac

if [ "$failures" -ne 0 ]; then
    echo "classify_cli: $failures of $checks checks failed"
    exit 1
fi
echo "classify_cli: $checks checks ok"
