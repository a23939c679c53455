# SPDX-License-Identifier: MIT
# The worker against a real Postfix and a real Redis, on loopback. A
# hand-made probe item names two MX hosts: nothing listens on the first
# one's address, Postfix on the second's. Checks: the worker falls back to
# the second MX; an existing mailbox is deliverable/accepted; an unknown one
# is undeliverable/mailbox_not_found with Postfix's own 550 5.1.1 text; the
# probe entry is acknowledged; the catch-all test address is rejected, so
# the domain hash says catch_all=0 and the decision is published; a domain
# whose Postfix accepts every address comes out risky/catch_all; an item
# whose only address is dead ends as unknown/mx_unreachable (an empty
# retry schedule, so at once and not on the delayed set); Postfix never
# saw DATA.
set -u
BUILD=${1:-build}
source scripts/lab/lab.sh
lab_init "$BUILD"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

WORKER=$LAB_BUILD_DIR/worker/mxprobe-worker
TOOL=tests/integration/worker_tool.py
[ -x "$WORKER" ] || lab_fail "worker binary $WORKER not found; build it"

DEAD_IP=127.0.0.2
MX_IP=127.0.0.3
lab_redis
lab_postfix "$MX_IP" "example.test,catchall.test" \
    "alice@example.test,@catchall.test"

# Prints field PATH (such as smtp.code) of the result of job id $1.
result_field()
{
    python3 "$TOOL" get-result "$LAB_REDIS_PORT" "mxprobe:result:$1" |
        python3 -c 'import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    value = value[part] if value is not None else None
print("nil" if value is None else value)' "$2"
}

wait_result()
{
    local id=$1 deadline=$((SECONDS + 30))
    while [ "$SECONDS" -le "$deadline" ]; do
        if python3 "$TOOL" get-result "$LAB_REDIS_PORT" \
            "mxprobe:result:$id" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    lab_fail "no result for job $id within 30 s; read $LAB_DIR/worker.log"
}

job()
{
    local id=$1 addr=$2
    printf '{"entry": "1-%s", "id": "%s", "email": "%s", "address": "%s",
        "batch": "b1", "reply": null, "first_probe_ms": 0, "attempts": 0}' \
        "$id" "$id" "$addr" "$addr"
}

NOW=$(date +%s%3N)
ITEM=$(printf '{"domain": "example.test", "mx": [
    {"name": "mx1.example.test", "pref": 10, "ips": ["%s"]},
    {"name": "mx2.example.test", "pref": 20, "ips": ["%s"]}],
  "jobs": [%s, %s], "catchall_local": "velmorantu4821",
  "catch_all": null, "attempt": 0, "first_ms": %s}' \
    "$DEAD_IP" "$MX_IP" "$(job job-ok alice@example.test)" \
    "$(job job-unknown bob@example.test)" "$NOW")
CATCHALL_ITEM=$(printf '{"domain": "catchall.test", "mx": [
    {"name": "mx.catchall.test", "pref": 10, "ips": ["%s"]}],
  "jobs": [%s], "catchall_local": null, "catch_all": true,
  "attempt": 0, "first_ms": %s}' \
    "$MX_IP" "$(job job-catchall anyone@catchall.test)" "$NOW")
DEAD_ITEM=$(printf '{"domain": "dead.test", "mx": [
    {"name": "mx.dead.test", "pref": 10, "ips": ["%s"]}],
  "jobs": [%s], "catchall_local": null, "catch_all": null,
  "attempt": 0, "first_ms": %s}' \
    "$DEAD_IP" "$(job job-dead x@dead.test)" "$NOW")

# Listen for the catch-all decision before anything can publish it.
redis-cli -p "$LAB_REDIS_PORT" SUBSCRIBE mxprobe:catchall \
    >"$LAB_DIR/catchall.sub" 2>&1 &
lab_track $! redis-subscriber
sleep 0.2

for item in "$ITEM" "$CATCHALL_ITEM" "$DEAD_ITEM"; do
    python3 "$TOOL" xadd-probe "$LAB_REDIS_PORT" mxprobe:probes "$item" \
        >/dev/null || lab_fail "XADD of a probe item failed"
done

MXPROBE_REDIS=$LAB_REDIS_URL MXPROBE_SMTP_PORT=$LAB_SMTP_PORT \
MXPROBE_HELO_NAME=probe.lab.test MXPROBE_SENDER=verify@probe.lab.test \
MXPROBE_CONNECT_TIMEOUT=3 MXPROBE_LOG_LEVEL=debug \
MXPROBE_WORKER_ID=worker-test MXPROBE_RETRY_SCHEDULE= \
    "$WORKER" >"$LAB_DIR/worker.log" 2>&1 &
WORKER_PID=$!
lab_track "$WORKER_PID" mxprobe-worker

for id in job-ok job-unknown job-catchall job-dead; do
    wait_result "$id"
done

fleet_check "existing mailbox status" "$(result_field job-ok status)" \
    deliverable
fleet_check "existing mailbox reason" "$(result_field job-ok reason)" accepted
fleet_check "existing mailbox code" "$(result_field job-ok smtp.code)" 250
fleet_check "fallback to the second MX" "$(result_field job-ok mx)" \
    mx2.example.test
fleet_check "fallback address" "$(result_field job-ok mx_ip)" "$MX_IP"
fleet_check "worker id in the result" "$(result_field job-ok worker)" \
    worker-test
fleet_check "catch-all flag of a normal domain" \
    "$(result_field job-ok catch_all)" False

fleet_check "unknown mailbox status" "$(result_field job-unknown status)" \
    undeliverable
fleet_check "unknown mailbox reason" "$(result_field job-unknown reason)" \
    mailbox_not_found
fleet_check "unknown mailbox code" "$(result_field job-unknown smtp.code)" 550
fleet_check "unknown mailbox enhanced code" \
    "$(result_field job-unknown smtp.enhanced)" 5.1.1
fleet_check_match "Postfix's own rejection text" \
    "$(result_field job-unknown smtp.text)" \
    'bob@example\.test.*Recipient address rejected: User unknown'
fleet_check "unknown mailbox stage" \
    "$(result_field job-unknown smtp.stage)" rcpt

fleet_check "catch-all domain status" \
    "$(result_field job-catchall status)" risky
fleet_check "catch-all domain reason" "$(result_field job-catchall reason)" \
    catch_all
fleet_check "catch-all keeps the real reply" \
    "$(result_field job-catchall smtp.code)" 250

fleet_check "dead MX status" "$(result_field job-dead status)" unknown
fleet_check "dead MX reason" "$(result_field job-dead reason)" mx_unreachable
fleet_check "dead MX stage" "$(result_field job-dead smtp.stage)" connect
fleet_check "dead MX code" "$(result_field job-dead smtp.code)" 0

fleet_check "catch-all decision in the domain hash" \
    "$(redis-cli -p "$LAB_REDIS_PORT" HGET mxprobe:domain:example.test \
        catch_all)" 0
lab_wait_log "$LAB_DIR/catchall.sub" 'example\.test' 5
fleet_check "catch-all decision published" \
    "$(lab_count "$LAB_DIR/catchall.sub" 'example\.test')" 1

# Every probe entry was acknowledged together with its results.
sleep 0.5
fleet_check "no pending probe entries" \
    "$(redis-cli -p "$LAB_REDIS_PORT" XPENDING mxprobe:probes workers |
        head -n 1)" 0
fleet_check "per-MX lease given back" \
    "$(redis-cli -p "$LAB_REDIS_PORT" ZCARD \
        mxprobe:mx:mx1.example.test:inflight)" 0
fleet_check "batch counter" \
    "$(redis-cli -p "$LAB_REDIS_PORT" HGET mxprobe:batch:b1 done)" 4

# Postfix logs the commands of each session when it disconnects; the
# worker must have sent RCPT and never DATA.
lab_wait_log "$LAB_POSTFIX_LOG" 'disconnect from .*rcpt=' 5 ||
    lab_fail "Postfix logged no finished session"
fleet_check "Postfix saw RCPT" \
    "$(lab_count "$LAB_POSTFIX_LOG" 'disconnect from .*rcpt=1/3')" 1
fleet_check "Postfix never saw DATA" \
    "$(lab_count "$LAB_POSTFIX_LOG" 'data=|bdat=')" 0
fleet_check "Postfix delivered nothing" \
    "$(lab_count "$LAB_POSTFIX_LOG" 'status=sent')" 0
fleet_check "worker debug log has state changes" \
    "$(lab_count "$LAB_DIR/worker.log" 'ev=state from=rcpt to=quit')" 2

# SIGTERM: the worker stops on its own.
kill -TERM "$WORKER_PID"
for _ in $(seq 1 50); do
    kill -0 "$WORKER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$WORKER_PID" 2>/dev/null; then
    fleet_fail "worker still running 5 s after SIGTERM"
else
    echo "ok: worker exits on SIGTERM"
fi

if [ "$FLEET_FAILED" -ne 0 ]; then
    echo "worker log: $LAB_DIR/worker.log"
    exit 1
fi
echo "worker_postfix: all checks passed"
