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

MX_IP=127.0.0.33
cat >"$LAB_DIR/zone" <<ZONE
mail.test MX 10 mx.mail.test
mx.mail.test A $MX_IP
ZONE
lab_redis
lab_dns "$LAB_DIR/zone"
lab_postfix "$MX_IP" "mail.test" "alice@mail.test"

export MXPROBE_REDIS=$LAB_REDIS_URL
export MXPROBE_DNS=$LAB_DNS
export MXPROBE_SMTP_PORT=$LAB_SMTP_PORT
export MXPROBE_HELO_NAME=probe.lab.test
export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_CLAIM_IDLE=3
export MXPROBE_LOG_LEVEL=debug

"$LAB_BUILD_DIR/coordinator/mxprobe-coordinator" >"$LAB_DIR/coordinator.log" 2>&1 &
COORD_PID=$!
lab_track "$COORD_PID" coordinator
"$LAB_BUILD_DIR/worker/mxprobe-worker" --worker-id w1 >"$LAB_DIR/worker.log" 2>&1 &
WORKER_PID=$!
lab_track "$WORKER_PID" worker

cli() { redis-cli -u "$LAB_REDIS_URL" "$@"; }

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
cli -x XADD mxprobe:jobs '*' id h-bigemail batch h email <"$LAB_DIR/big" >/dev/null
add h-bigemail
add "$(cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/id10k")"
add "$(cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/id1m")"
cli -x XADD mxprobe:jobs '*' id h-junkemail batch h email <"$LAB_DIR/junk" >/dev/null
add h-junkemail
add "$(cli -x XADD mxprobe:jobs '*' email alice@mail.test batch h id \
    <"$LAB_DIR/junk")"
cli XADD mxprobe:jobs '*' id h-noemail batch h >/dev/null
add h-noemail
cli XADD mxprobe:jobs '*' id h-emptyemail email '' batch h >/dev/null
add h-emptyemail
cli XADD mxprobe:jobs '*' batch h unrelated field >/dev/null
# The entry id is not known before the XADD, so read it back.
add "$(cli --raw XREVRANGE mxprobe:jobs + - COUNT 1 | head -n 1)"
args=(XADD mxprobe:jobs '*' id h-manyfields batch h)
for i in $(seq 1 5000); do args+=("f$i" v); done
args+=(email alice@mail.test)
cli "${args[@]}" >/dev/null
add h-manyfields
cli XADD mxprobe:jobs '*' email alice@mail.test email bob@mail.test \
    id h-twoemail batch h >/dev/null
add h-twoemail
cli XADD mxprobe:jobs '*' email alice@mail.test id h-reused batch h >/dev/null
cli XADD mxprobe:jobs '*' email bob@mail.test id h-reused batch h >/dev/null
add h-reused
add h-reused
cli SET h:string-key hello >/dev/null
cli XADD mxprobe:jobs '*' email alice@mail.test id h-reply-string batch h \
    reply h:string-key >/dev/null
add h-reply-string
cli XADD mxprobe:jobs '*' email nobody@nxdomain.test id h-reply-string2 \
    batch h reply h:string-key >/dev/null
add h-reply-string2
cli XADD mxprobe:jobs '*' email alice@mail.test id h-reply-jobs batch h \
    reply mxprobe:jobs >/dev/null
add h-reply-jobs
cli XADD mxprobe:jobs '*' email bob@mail.test id h-reply-ok batch h \
    reply h:replies >/dev/null
add h-reply-ok

deadline=$((SECONDS + 30))
while :; do
    done_count=$(cli HGET mxprobe:batch:h done)
    [ "${done_count:-0}" -ge "$jobs" ] && break
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.3
done
sleep 3   # late or repeated results would arrive now

fail=0
check() {
    local what=$1 got=$2 expected=$3
    if [ "$got" != "$expected" ]; then
        echo "FAIL: $what: got '$got', want '$expected'"
        fail=1
    fi
}

ids_script="local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'id' then out[#out + 1] = f[i + 1] end
  end
end
return out"
cli --raw EVAL "$ids_script" 1 mxprobe:results | sort >"$LAB_DIR/got-ids"
sort -o "$LAB_DIR/want-ids" "$LAB_DIR/want-ids"
check "result ids (diff want got)" \
    "$(diff "$LAB_DIR/want-ids" "$LAB_DIR/got-ids" | grep '^[<>]' |
        tr '\n' ' ')" ""
check "results stream length" "$(cli XLEN mxprobe:results)" "$jobs"
check "batch done" "$(cli HGET mxprobe:batch:h done)" "$jobs"
check "reply list h:replies" "$(cli LLEN h:replies)" 1
check "type of h:string-key" "$(cli TYPE h:string-key)" string
check "value of h:string-key" "$(cli GET h:string-key)" hello
check "pending jobs" "$(cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
check "pending probes" "$(cli XPENDING mxprobe:probes workers | head -n 1)" 0

verdict() {
    "$LAB_BUILD_DIR/client/mxprobe" result "$1" 2>&1 |
        jq -r '.status + " " + .reason' 2>&1 || true
}
check "h-bigemail" "$(verdict h-bigemail)" "undeliverable syntax"
check "h-junkemail" "$(verdict h-junkemail)" "undeliverable syntax"
check "h-noemail" "$(verdict h-noemail)" "undeliverable syntax"
check "h-emptyemail" "$(verdict h-emptyemail)" "undeliverable syntax"
check "h-manyfields" "$(verdict h-manyfields)" "deliverable accepted"
check "h-twoemail (first field wins)" "$(verdict h-twoemail)" \
    "deliverable accepted"
check "h-reply-string" "$(verdict h-reply-string)" "deliverable accepted"
check "h-reply-string2" "$(verdict h-reply-string2)" \
    "undeliverable domain_not_found"
# The stored email is cut to 1024 bytes.
check "stored length of the 1 MB email" \
    "$("$LAB_BUILD_DIR/client/mxprobe" result h-bigemail | jq -r '.email | length')" \
    1024

kill -0 "$COORD_PID" 2>/dev/null || { echo "FAIL: coordinator died"; fail=1; }
kill -0 "$WORKER_PID" 2>/dev/null || { echo "FAIL: worker died"; fail=1; }
if grep -q "runtime error\|AddressSanitizer" "$LAB_DIR"/*.log; then
    echo "FAIL: a sanitizer reported an error; read $LAB_DIR/*.log"
    fail=1
fi
[ "$fail" = 0 ] || lab_fail "hostile_jobs failed; logs in $LAB_DIR"
echo "hostile_jobs: $jobs jobs, each answered exactly once"
