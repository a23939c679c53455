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
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

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
fleet_env

coord_n=0
start_coordinator() {
    coord_n=$((coord_n + 1))
    fleet_start_coordinator "$LAB_DIR/coordinator-$coord_n.log" \
        --worker-id coord
}
start_worker() {
    fleet_start_worker "$1" "$LAB_DIR/worker-$1.log"
}

# Expected "status reason" per job id.
declare -A want
total=0
submit() {
    local email=$1 expected=$2 id
    total=$((total + 1))
    id=crash-$total
    want[$id]=$expected
    fleet_cli XADD mxprobe:jobs '*' email "$email" id "$id" batch crash \
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

start_coordinator
start_worker w1
W1_PID=$FLEET_WORKER_PID
start_worker w2

# Round 1: 60 addresses plus two jobs that the coordinator decides itself.
submit_round 1 60
submit "no-at-sign" "undeliverable syntax"
submit "someone@nxdomain.test" "undeliverable domain_not_found"

# Kill w1 once probe items are pending under its name.
lab_wait_log "$LAB_DIR/worker-w1.log" 'ev=send line="RCPT' 15 ||
    lab_fail "worker w1 never started a session; read $LAB_DIR/worker-w1.log"
w1_pending=$(fleet_cli XPENDING mxprobe:probes workers - + 1000 w1 |
    awk 'NR % 4 == 1' | wc -l)
[ "$w1_pending" -gt 0 ] ||
    lab_fail "w1 held no probe item when it was to be killed: nothing in flight"
kill -KILL "$W1_PID"
echo "crash_recovery: killed w1 with $w1_pending probe entries pending"

# Kill the coordinator while jobs wait in it, submit while it is down,
# then start it again under the same consumer name.
submit "a@silent.test" "unknown dns_error"
submit "b@silent.test" "unknown dns_error"
sleep 0.3
coord_pending=$(fleet_cli XPENDING mxprobe:jobs coordinator | head -n 1)
[ "$coord_pending" -gt 0 ] ||
    lab_fail "the coordinator held no job when it was to be killed"
kill -KILL "$FLEET_COORD_PID"
echo "crash_recovery: killed the coordinator with $coord_pending jobs pending"
wait "$FLEET_COORD_PID" 2>/dev/null || true
submit_round 2 20
sleep 1
start_coordinator

# Shut Redis down while work is still in flight, then start it on the same
# port and folder, where AOF brings the streams back.
sleep 2
before_shutdown=$(fleet_batch_done crash)
[ "$before_shutdown" -lt "$total" ] ||
    lab_fail "all $total jobs done before the Redis restart; make the MX slower"
fleet_cli SHUTDOWN >/dev/null 2>&1 || true
deadline=$((SECONDS + 10))
while fleet_cli PING >/dev/null 2>&1; do
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
until [ "$(fleet_cli PING 2>/dev/null)" = PONG ]; do
    [ "$SECONDS" -lt "$deadline" ] || lab_fail "Redis did not come back"
    sleep 0.1
done

# Round 3: new work after the restart must flow too.
submit_round 3 18

fleet_wait_batch 45 crash "$total" ||
    lab_fail "only $(fleet_batch_done crash) of $total results after 45 s;" \
        "read $LAB_DIR/coordinator-*.log and $LAB_DIR/worker-*.log"
sleep 2   # a duplicate result, if any, would arrive now

fleet_result_ids >"$LAB_DIR/result-ids"
for id in "${!want[@]}"; do echo "$id"; done | sort >"$LAB_DIR/want-ids"

fleet_check "ids with more than one result" \
    "$(uniq -d "$LAB_DIR/result-ids" | tr '\n' ' ')" ""
fleet_check "jobs without a result" \
    "$(comm -13 <(sort -u "$LAB_DIR/result-ids") "$LAB_DIR/want-ids" |
        tr '\n' ' ')" ""
fleet_check "results of unknown ids" \
    "$(comm -23 <(sort -u "$LAB_DIR/result-ids") "$LAB_DIR/want-ids" |
        tr '\n' ' ')" ""
fleet_check "results stream length" "$(fleet_cli XLEN mxprobe:results)" "$total"
fleet_check "reply list length" "$(fleet_cli LLEN crash:replies)" "$total"
fleet_check "batch done" "$(fleet_batch_done crash)" "$total"
sum=$(fleet_cli --raw HGETALL mxprobe:batch:crash | paste - - |
    awk '$1 != "done" { s += $2 } END { print s + 0 }')
fleet_check "sum of batch status counters" "$sum" "$total"

for id in "${!want[@]}"; do
    fleet_check "verdict of $id" "$(fleet_verdict_of "$id")" "${want[$id]}"
done

fleet_check "pending jobs" \
    "$(fleet_cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
fleet_check "pending probes" \
    "$(fleet_cli XPENDING mxprobe:probes workers | head -n 1)" 0
fleet_check "delayed items" "$(fleet_cli ZCARD mxprobe:delayed)" 0
fleet_check "dead letters" "$(fleet_cli XLEN mxprobe:dead)" 0

# The processes that were not killed must still be running.
for p in "$FLEET_COORD_PID" "$FLEET_WORKER_PID"; do
    kill -0 "$p" 2>/dev/null || fleet_fail "process $p died"
done
fleet_check_sanitizers
fleet_end crash_recovery
echo "crash_recovery: $total jobs, each with exactly one result"
