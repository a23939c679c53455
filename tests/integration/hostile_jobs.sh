#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Hostile jobs written with plain redis-cli. The jobs carry a 1 MB email,
# 10,000-byte and 1 MB ids, binary junk in email and id, missing fields,
# 5,000 extra fields, or a repeated email field. Two jobs share one id, and
# some reply fields name a string key or the jobs stream itself. Every job
# must get exactly one result in the results stream (under its id, or its
# entry id when the id is invalid) and must be counted in its batch. A key
# named as reply must keep its type, and both processes must survive.
#
# Usage: hostile_jobs.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

MX_IP=127.0.0.33
cat >"$LAB_DIR/zone" <<ZONE
mail.test MX 10 mx.mail.test
mx.mail.test A $MX_IP
ZONE
lab_redis
lab_dns "$LAB_DIR/zone"
lab_postfix "$MX_IP" "mail.test" "alice@mail.test"

export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_CLAIM_IDLE=3
fleet_start

# Expected result ids, one line per job (an id may repeat: two jobs).
: >"$LAB_DIR/want-ids"
jobs=0
# add ID: records one more job of batch "h" whose result has id ID.
add() {
    echo "$1" >>"$LAB_DIR/want-ids"
    jobs=$((jobs + 1))
}

head -c 1048576 /dev/zero | tr '\0' a >"$LAB_DIR/big"
printf '@mail.test' >>"$LAB_DIR/big"
head -c 10000 /dev/zero | tr '\0' i >"$LAB_DIR/id10k"
head -c 1048576 /dev/zero | tr '\0' b >"$LAB_DIR/id1m"
head -c 4096 /dev/urandom >"$LAB_DIR/junk"

# redis-cli -x sends standard input as the last argument, which keeps
# megabyte values off the command line.
fleet_cli -x XADD mxprobe:jobs '*' id h-bigemail batch h email \
    <"$LAB_DIR/big" >/dev/null
add h-bigemail
add "$(fleet_cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/id10k")"
add "$(fleet_cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/id1m")"
fleet_cli -x XADD mxprobe:jobs '*' id h-junkemail batch h email \
    <"$LAB_DIR/junk" >/dev/null
add h-junkemail
add "$(fleet_cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/junk")"
fleet_cli XADD mxprobe:jobs '*' id h-noemail batch h >/dev/null
add h-noemail
fleet_cli XADD mxprobe:jobs '*' id h-emptyemail email '' batch h >/dev/null
add h-emptyemail
fleet_cli XADD mxprobe:jobs '*' batch h unrelated field >/dev/null
# The entry id is not known before the XADD, so read it back.
add "$(fleet_cli --raw XREVRANGE mxprobe:jobs + - COUNT 1 | head -n 1)"
args=(XADD mxprobe:jobs '*' id h-manyfields batch h)
for i in $(seq 1 5000); do args+=("f$i" v); done
args+=(email alice@mail.test)
fleet_cli "${args[@]}" >/dev/null
add h-manyfields
fleet_cli XADD mxprobe:jobs '*' email alice@mail.test email bob@mail.test \
    id h-twoemail batch h >/dev/null
add h-twoemail
fleet_cli XADD mxprobe:jobs '*' email alice@mail.test id h-reused batch h \
    >/dev/null
fleet_cli XADD mxprobe:jobs '*' email bob@mail.test id h-reused batch h \
    >/dev/null
add h-reused
add h-reused
fleet_cli SET h:string-key hello >/dev/null
fleet_cli XADD mxprobe:jobs '*' email alice@mail.test id h-reply-string \
    batch h reply h:string-key >/dev/null
add h-reply-string
fleet_cli XADD mxprobe:jobs '*' email nobody@nxdomain.test id h-reply-string2 \
    batch h reply h:string-key >/dev/null
add h-reply-string2
fleet_cli XADD mxprobe:jobs '*' email alice@mail.test id h-reply-jobs batch h \
    reply mxprobe:jobs >/dev/null
add h-reply-jobs
fleet_cli XADD mxprobe:jobs '*' email bob@mail.test id h-reply-ok batch h \
    reply h:replies >/dev/null
add h-reply-ok

# A shortfall is not fatal here: the checks below name what is missing.
fleet_wait_batch 30 h "$jobs" || true
sleep 3   # late or repeated results would arrive now

fleet_result_ids >"$LAB_DIR/got-ids"
sort -o "$LAB_DIR/want-ids" "$LAB_DIR/want-ids"
fleet_check "result ids (diff want got)" \
    "$(diff "$LAB_DIR/want-ids" "$LAB_DIR/got-ids" | grep '^[<>]' |
        tr '\n' ' ')" ""
fleet_check "results stream length" "$(fleet_cli XLEN mxprobe:results)" "$jobs"
fleet_check "batch done" "$(fleet_cli HGET mxprobe:batch:h done)" "$jobs"
fleet_check "reply list h:replies" "$(fleet_cli LLEN h:replies)" 1
fleet_check "type of h:string-key" "$(fleet_cli TYPE h:string-key)" string
fleet_check "value of h:string-key" "$(fleet_cli GET h:string-key)" hello
fleet_check "pending jobs" \
    "$(fleet_cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
fleet_check "pending probes" \
    "$(fleet_cli XPENDING mxprobe:probes workers | head -n 1)" 0

fleet_verdict h-bigemail "undeliverable syntax"
fleet_verdict h-junkemail "undeliverable syntax"
fleet_verdict h-noemail "undeliverable syntax"
fleet_verdict h-emptyemail "undeliverable syntax"
fleet_verdict h-manyfields "deliverable accepted"
fleet_check "h-twoemail (first field wins)" "$(fleet_verdict_of h-twoemail)" \
    "deliverable accepted"
fleet_verdict h-reply-string "deliverable accepted"
fleet_verdict h-reply-string2 "undeliverable domain_not_found"
# The stored email is cut to 1024 bytes.
fleet_check "stored length of the 1 MB email" \
    "$(fleet_field h-bigemail '.email | length')" 1024

kill -0 "$FLEET_COORD_PID" 2>/dev/null || fleet_fail "coordinator died"
kill -0 "$FLEET_WORKER_PID" 2>/dev/null || fleet_fail "worker died"
fleet_check_sanitizers
fleet_end hostile_jobs
echo "hostile_jobs: $jobs jobs, each answered exactly once"
