#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Poison work across restarts under a fixed id. A job the coordinator
# never finishes (its domain's DNS never answers) and a probe item the
# worker never finishes (its MX delays the greeting for ten minutes) stay
# pending under the process's own consumer name. Each one is killed with
# SIGKILL while holding that work and started again with the same
# --worker-id, which reads its own pending list again. After
# MXPROBE_MAX_DELIVERIES deliveries the next start must answer the job
# unknown/temporary_failure exactly once and copy it to mxprobe:dead,
# instead of reading it again forever.
#
# Usage: poison_restarts.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

MAX=3

printf '%s\n' 'greeting delay=600s 220 mx.fake.test ESMTP never' \
    >"$LAB_DIR/never.scn"
cat >"$LAB_DIR/zone" <<ZONE
hang.test TIMEOUT
never.test MX 10 mx.never.test
mx.never.test A 127.0.0.41
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.41 "$LAB_DIR/never.scn"

export MXPROBE_REDIS=$LAB_REDIS_URL
export MXPROBE_DNS=$LAB_DNS
export MXPROBE_SMTP_PORT=$LAB_SMTP_PORT
export MXPROBE_HELO_NAME=probe.lab.test
export MXPROBE_LOG_LEVEL=debug
export MXPROBE_MAX_DELIVERIES=$MAX
# One DNS try that outlasts the test, and a greeting wait as long as the
# server's delay: the work stays in flight until the process is killed.
export MXPROBE_DNS_TIMEOUT=60
export MXPROBE_DNS_TRIES=1
export MXPROBE_GREETING_TIMEOUT=900
# Leases of killed workers stay until they expire; room for all of them.
export MXPROBE_MX_CONCURRENCY=20
# No takeover by the periodic scan: only the own-pending path is tested.
export MXPROBE_CLAIM_IDLE=600

COORD_PID=
start_coordinator()
{
    "$LAB_BUILD_DIR/coordinator/mxprobe-coordinator" --worker-id cpoison \
        >>"$LAB_DIR/coordinator.log" 2>&1 &
    COORD_PID=$!
    lab_track "$COORD_PID" coordinator
}

start_worker()
{
    "$LAB_BUILD_DIR/worker/mxprobe-worker" --worker-id wpoison \
        >>"$LAB_DIR/worker.log" 2>&1 &
    FLEET_WORKER_PID=$!
    lab_track "$FLEET_WORKER_PID" worker
}

# deliveries STREAM GROUP CONSUMER: the delivery count of the consumer's
# first pending entry, 0 when it has none.
deliveries()
{
    local n
    n=$(fleet_cli XPENDING "$1" "$2" - + 1 "$3" | sed -n 4p)
    echo "${n:-0}"
}

# wait_deliveries STREAM GROUP CONSUMER N: until the entry was read N times.
wait_deliveries()
{
    local deadline=$((SECONDS + 20))
    until [ "$(deliveries "$1" "$2" "$3")" -ge "$4" ]; do
        [ "$SECONDS" -lt "$deadline" ] ||
            lab_fail "entry of $3 not delivered $4 times within 20s" \
                "(count $(deliveries "$1" "$2" "$3")); logs in $LAB_DIR"
        sleep 0.1
    done
}

# wait_count FILE REGEX N: until N lines of FILE match.
wait_count()
{
    local deadline=$((SECONDS + 20))
    until [ "$(lab_count "$1" "$2")" -ge "$3" ]; do
        [ "$SECONDS" -lt "$deadline" ] ||
            lab_fail "fewer than $3 lines of $1 match /$2/ after 20s"
        sleep 0.1
    done
}

# results_of ID: how many entries of the results stream carry job ID.
results_of()
{
    fleet_cli --raw XRANGE mxprobe:results - + |
        grep -cx -- "$1" || true
}

# ---- the coordinator: a job whose DNS lookup never ends

fleet_submit poison-c alice@hang.test
for round in $(seq 1 "$MAX"); do
    start_coordinator
    wait_deliveries mxprobe:jobs coordinator cpoison "$round"
    # The job is in flight (waiting for DNS), not answered.
    fleet_check "no result for poison-c after delivery $round" \
        "$(fleet_cli EXISTS mxprobe:result:poison-c)" 0
    kill -KILL "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
done
# Delivered MAX times: this start must answer it from the pending list.
start_coordinator
fleet_wait 20 poison-c
fleet_verdict poison-c "unknown temporary_failure"
fleet_check "results stream entries of poison-c" "$(results_of poison-c)" 1
fleet_check "dead letter of poison-c" \
    "$(fleet_cli --raw XRANGE mxprobe:dead - + | grep -cx poison-c)" 1
fleet_check "deliveries recorded in the dead letter" \
    "$(fleet_cli --raw XRANGE mxprobe:dead - + |
        sed -n '/^deliveries$/{n;p}')" $((MAX + 1))
fleet_check "pending jobs of cpoison" \
    "$(deliveries mxprobe:jobs coordinator cpoison)" 0

# ---- the worker: a probe item whose MX never greets

fleet_submit poison-w bob@never.test
for round in $(seq 1 "$MAX"); do
    start_worker
    wait_deliveries mxprobe:probes workers wpoison "$round"
    # Killed only once its session is connected, waiting for the greeting.
    wait_count "$LAB_DIR/worker.log" 'ev=state from=connecting to=greeting' \
        "$round"
    fleet_check "no result for poison-w after delivery $round" \
        "$(fleet_cli EXISTS mxprobe:result:poison-w)" 0
    kill -KILL "$FLEET_WORKER_PID"
    wait "$FLEET_WORKER_PID" 2>/dev/null || true
done
start_worker
fleet_wait 20 poison-w
fleet_verdict poison-w "unknown temporary_failure"
fleet_check "results stream entries of poison-w" "$(results_of poison-w)" 1
fleet_check "dead letters of the probe item" \
    "$(fleet_cli --raw XRANGE mxprobe:dead - + | grep -cx max_deliveries)" 1
fleet_check "worker's log names the exhausted item" \
    "$(lab_count "$LAB_DIR/worker.log" 'ev=claims_dead_letter .*why=max_deliveries')" 1
fleet_check "SMTP sessions started for poison-w" \
    "$(lab_count "$LAB_DIR/worker.log" 'ev=state from=connecting to=greeting')" \
    "$MAX"

# A second pass must find nothing left: the answers stay single.
sleep 1
fleet_check "results stream entries of poison-c at the end" \
    "$(results_of poison-c)" 1
fleet_check "results stream entries of poison-w at the end" \
    "$(results_of poison-w)" 1
fleet_finish poison_restarts
