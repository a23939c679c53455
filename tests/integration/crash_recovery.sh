#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Crash safety of the whole fleet. A coordinator and two workers verify 100
# jobs against a slow MX, whose every RCPT reply comes 400 ms late. Mid-run
# the test kills one worker with SIGKILL, kills and restarts the
# coordinator, and shuts Redis down and starts it again on the same port
# and folder (AOF on). Then every job must have exactly one result: one
# entry in the results stream, its result key, one entry in its reply list
# and its count in the batch hash. Nothing may stay pending in either
# consumer group or in the delayed set, and nothing may be dead-lettered.
#
# Usage: crash_recovery.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"

MX_IP=127.0.0.20
DOMAINS=(d1.test d2.test d3.test d4.test d5.test)

{
    for d in "${DOMAINS[@]}"; do
        echo "$d MX 10 mx.$d"
        echo "mx.$d A $MX_IP"
    done
    # Never answered: jobs of this domain stay with the coordinator for
    # the whole DNS time-out, so it surely holds some when it is killed.
    echo "silent.test TIMEOUT"
} >"$LAB_DIR/zone"

# Slow but polite: local parts starting with "exists" are accepted, every
# other one (the catch-all probe included) is rejected.
cat >"$LAB_DIR/slow.scn" <<'SCN'
rcpt exists* delay=400 250 2.1.5 Ok
rcpt * delay=400 550 5.1.1 <unknown>: Recipient address rejected: User unknown
SCN

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp "$MX_IP" "$LAB_DIR/slow.scn"

export MXPROBE_REDIS=$LAB_REDIS_URL
export MXPROBE_DNS=$LAB_DNS
export MXPROBE_SMTP_PORT=$LAB_SMTP_PORT
export MXPROBE_HELO_NAME=probe.lab.test
export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_GREETING_TIMEOUT=5
export MXPROBE_RCPT_TIMEOUT=5
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_DNS_TRIES=2
export MXPROBE_CLAIM_IDLE=2
export MXPROBE_BATCH_SIZE=5
# The killed worker's per-MX leases stay for claim_idle. A high limit keeps
# them from stalling the survivor, because this test is about results.
export MXPROBE_MX_CONCURRENCY=50
export MXPROBE_MX_RATE=100000
export MXPROBE_LOG_LEVEL=debug

COORD=$LAB_BUILD_DIR/coordinator/mxprobe-coordinator
WORKER=$LAB_BUILD_DIR/worker/mxprobe-worker
cli() { redis-cli -u "$LAB_REDIS_URL" "$@"; }

coord_n=0
start_coordinator() {
    coord_n=$((coord_n + 1))
    "$COORD" --worker-id coord >"$LAB_DIR/coordinator-$coord_n.log" 2>&1 &
    COORD_PID=$!
    lab_track "$COORD_PID" coordinator
}
start_worker() {
    "$WORKER" --worker-id "$1" >"$LAB_DIR/worker-$1.log" 2>&1 &
    WORKER_PID=$!
    lab_track "$WORKER_PID" "worker-$1"
}

# Expected "status reason" per job id.
declare -A want
total=0
submit() {
    local email=$1 expected=$2 id
    total=$((total + 1))
    id=crash-$total
    want[$id]=$expected
    cli XADD mxprobe:jobs '*' email "$email" id "$id" batch crash \
        reply crash:replies >/dev/null
}
# Submits COUNT addresses spread over the domains, one in three existing.
submit_round() {
    local round=$1 count=$2 i d
    for ((i = 0; i < count; i++)); do
        d=${DOMAINS[$((i % ${#DOMAINS[@]}))]}
        if ((i % 3 == 0)); then
            submit "exists-$round-$i@$d" "deliverable accepted"
        else
            submit "user-$round-$i@$d" "undeliverable mailbox_not_found"
        fi
    done
}
done_count() {
    local n
    n=$(cli HGET mxprobe:batch:crash done)
    echo "${n:-0}"
}

start_coordinator
start_worker w1
W1_PID=$WORKER_PID
start_worker w2

# Round 1: 60 addresses plus two jobs that the coordinator decides itself.
submit_round 1 60
submit "no-at-sign" "undeliverable syntax"
submit "someone@nxdomain.test" "undeliverable domain_not_found"

# Kill w1 once probe items are pending under its name.
lab_wait_log "$LAB_DIR/worker-w1.log" 'ev=send line="RCPT' 15 ||
    lab_fail "worker w1 never started a session; read $LAB_DIR/worker-w1.log"
w1_pending=$(cli XPENDING mxprobe:probes workers - + 1000 w1 | awk 'NR % 4 == 1' | wc -l)
[ "$w1_pending" -gt 0 ] ||
    lab_fail "w1 held no probe item when it was to be killed: nothing in flight"
kill -KILL "$W1_PID"
echo "crash_recovery: killed w1 with $w1_pending probe entries pending"

# Kill the coordinator while jobs wait in it, submit while it is down,
# then start it again under the same consumer name.
submit "a@silent.test" "unknown dns_error"
submit "b@silent.test" "unknown dns_error"
sleep 0.3
coord_pending=$(cli XPENDING mxprobe:jobs coordinator | head -n 1)
[ "$coord_pending" -gt 0 ] ||
    lab_fail "the coordinator held no job when it was to be killed"
kill -KILL "$COORD_PID"
echo "crash_recovery: killed the coordinator with $coord_pending jobs pending"
wait "$COORD_PID" 2>/dev/null || true
submit_round 2 20
sleep 1
start_coordinator

# Shut Redis down while work is still in flight, then start it on the same
# port and folder, where AOF brings the streams back.
sleep 2
before_shutdown=$(done_count)
[ "$before_shutdown" -lt "$total" ] ||
    lab_fail "all $total jobs done before the Redis restart; make the MX slower"
cli SHUTDOWN >/dev/null 2>&1 || true
deadline=$((SECONDS + 10))
while cli PING >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || lab_fail "Redis did not shut down"
    sleep 0.1
done
echo "crash_recovery: Redis shut down with $before_shutdown of $total done"
sleep 2
redis-server --port "$LAB_REDIS_PORT" --bind 127.0.0.1 --dir "$LAB_DIR/redis" \
    --appendonly yes --save '' --daemonize no \
    --logfile "$LAB_DIR/redis/redis-2.log" >/dev/null 2>&1 &
lab_track $! redis-server-2
deadline=$((SECONDS + 10))
until [ "$(cli PING 2>/dev/null)" = PONG ]; do
    [ "$SECONDS" -lt "$deadline" ] || lab_fail "Redis did not come back"
    sleep 0.1
done

# Round 3: new work after the restart must flow too.
submit_round 3 18

deadline=$((SECONDS + 45))
while [ "$(done_count)" -lt "$total" ]; do
    [ "$SECONDS" -lt "$deadline" ] ||
        lab_fail "only $(done_count) of $total results after 45 s; read" \
            "$LAB_DIR/coordinator-*.log and $LAB_DIR/worker-*.log"
    sleep 0.3
done
sleep 2   # a duplicate result, if any, would arrive now

fail=0
check() {
    local what=$1 got=$2 expected=$3
    if [ "$got" != "$expected" ]; then
        echo "FAIL: $what: got '$got', want '$expected'"
        fail=1
    fi
}

# The id field of every results entry, read by Lua so that the binary
# msgpack field cannot break the line-based parsing.
ids_script="local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'id' then out[#out + 1] = f[i + 1] end
  end
end
return out"
cli --raw EVAL "$ids_script" 1 mxprobe:results | sort >"$LAB_DIR/result-ids"
for id in "${!want[@]}"; do echo "$id"; done | sort >"$LAB_DIR/want-ids"

check "ids with more than one result" \
    "$(uniq -d "$LAB_DIR/result-ids" | tr '\n' ' ')" ""
check "jobs without a result" \
    "$(comm -13 <(sort -u "$LAB_DIR/result-ids") "$LAB_DIR/want-ids" |
        tr '\n' ' ')" ""
check "results of unknown ids" \
    "$(comm -23 <(sort -u "$LAB_DIR/result-ids") "$LAB_DIR/want-ids" |
        tr '\n' ' ')" ""
check "results stream length" "$(cli XLEN mxprobe:results)" "$total"
check "reply list length" "$(cli LLEN crash:replies)" "$total"
check "batch done" "$(done_count)" "$total"
sum=$(cli --raw HGETALL mxprobe:batch:crash | paste - - |
    awk '$1 != "done" { s += $2 } END { print s + 0 }')
check "sum of batch status counters" "$sum" "$total"

for id in "${!want[@]}"; do
    got=$("$LAB_BUILD_DIR/client/mxprobe" result "$id" 2>&1 |
        jq -r '.status + " " + .reason' 2>&1 || true)
    check "verdict of $id" "$got" "${want[$id]}"
done

check "pending jobs" "$(cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
check "pending probes" "$(cli XPENDING mxprobe:probes workers | head -n 1)" 0
check "delayed items" "$(cli ZCARD mxprobe:delayed)" 0
check "dead letters" "$(cli XLEN mxprobe:dead)" 0

# The processes that were not killed must still be running.
for p in "$COORD_PID" "$WORKER_PID"; do
    kill -0 "$p" 2>/dev/null || { echo "FAIL: process $p died"; fail=1; }
done
if grep -l "runtime error\|AddressSanitizer\|LeakSanitizer" \
    "$LAB_DIR"/*.log >/dev/null 2>&1; then
    echo "FAIL: a sanitizer reported an error; read $LAB_DIR/*.log"
    fail=1
fi
[ "$fail" = 0 ] || lab_fail "crash_recovery failed; logs in $LAB_DIR"
echo "crash_recovery: $total jobs, each with exactly one result"
