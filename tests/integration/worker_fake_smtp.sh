# SPDX-License-Identifier: MIT
# The worker against scripted SMTP servers, for behaviour no real MTA shows
# on demand: a greylisting server (the address is put on the delayed set
# with its attempt count, then accepted on the second attempt), a server
# that answers garbage (unknown/protocol_error), and a first MX that sends
# 421 at the greeting (the worker moves on to the second MX).
set -u
BUILD=${1:-build}
source scripts/lab/lab.sh
lab_init "$BUILD"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

WORKER=$LAB_BUILD_DIR/worker/mxprobe-worker
TOOL=tests/integration/worker_tool.py
[ -x "$WORKER" ] || lab_fail "worker binary $WORKER not found; build it"

GREY_IP=127.0.0.4
GARBAGE_IP=127.0.0.5
BUSY_IP=127.0.0.6
GOOD_IP=127.0.0.7
lab_redis
lab_fake_smtp "$GREY_IP" greylist
lab_fake_smtp "$GARBAGE_IP" garbage
lab_fake_smtp "$BUSY_IP" greeting-421
lab_fake_smtp "$GOOD_IP" basic

json_field()
{
    python3 -c 'import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    if isinstance(value, list):
        value = value[int(part)]
    elif value is not None:
        value = value[part]
print("nil" if value is None else value)' "$1"
}

result_field()
{
    python3 "$TOOL" get-result "$LAB_REDIS_PORT" "mxprobe:result:$1" |
        json_field "$2"
}

has_result()
{
    python3 "$TOOL" get-result "$LAB_REDIS_PORT" "mxprobe:result:$1" \
        >/dev/null 2>&1
}

wait_result()
{
    local id=$1 deadline=$((SECONDS + 30))
    while [ "$SECONDS" -le "$deadline" ]; do
        has_result "$id" && return 0
        sleep 0.1
    done
    lab_fail "no result for job $id within 30 s; read $LAB_DIR/worker.log"
}

item()
{
    local domain=$1 id=$2 addr=$3 mx=$4
    printf '{"domain": "%s", "mx": [%s],
      "jobs": [{"entry": "1-%s", "id": "%s", "email": "%s",
        "address": "%s", "batch": null, "reply": null,
        "first_probe_ms": 0, "attempts": 0}],
      "catchall_local": null, "catch_all": false, "attempt": 0,
      "first_ms": %s}' "$domain" "$mx" "$id" "$id" "$addr" "$addr" \
        "$(date +%s%3N)"
}

mx()
{
    printf '{"name": "%s", "pref": %s, "ips": ["%s"]}' "$1" "$2" "$3"
}

add_item()
{
    python3 "$TOOL" xadd-probe "$LAB_REDIS_PORT" mxprobe:probes "$1" \
        >/dev/null || lab_fail "XADD of a probe item failed"
}

add_item "$(item grey.test job-grey exists@grey.test \
    "$(mx mx.grey.test 10 "$GREY_IP")")"
add_item "$(item garbage.test job-garbage exists@garbage.test \
    "$(mx mx.garbage.test 10 "$GARBAGE_IP")")"
add_item "$(item busy.test job-busy exists@busy.test \
    "$(mx mx1.busy.test 10 "$BUSY_IP"), $(mx mx2.busy.test 20 "$GOOD_IP")")"

# The retry schedule puts the second attempt 1 s after the first.
MXPROBE_REDIS=$LAB_REDIS_URL MXPROBE_SMTP_PORT=$LAB_SMTP_PORT \
MXPROBE_HELO_NAME=probe.lab.test MXPROBE_RETRY_SCHEDULE=1,2 \
MXPROBE_CONNECT_TIMEOUT=3 MXPROBE_LOG_LEVEL=debug \
MXPROBE_WORKER_ID=worker-fake \
    "$WORKER" >"$LAB_DIR/worker.log" 2>&1 &
lab_track $! mxprobe-worker

wait_result job-garbage
fleet_check "garbage status" "$(result_field job-garbage status)" unknown
fleet_check "garbage reason" "$(result_field job-garbage reason)" protocol_error

wait_result job-busy
fleet_check "421 greeting moves to the next MX" "$(result_field job-busy mx)" \
    mx2.busy.test
fleet_check "second MX answer" "$(result_field job-busy status)" deliverable
fleet_check "second MX address" "$(result_field job-busy mx_ip)" "$GOOD_IP"

# Greylisted: no result yet, the item waits on the delayed set.
deadline=$((SECONDS + 15))
while [ "$SECONDS" -le "$deadline" ]; do
    n=$(redis-cli -p "$LAB_REDIS_PORT" ZCARD mxprobe:delayed)
    [ "$n" -ge 1 ] && break
    sleep 0.1
done
fleet_check "greylisted item on the delayed set" \
    "$(redis-cli -p "$LAB_REDIS_PORT" ZCARD mxprobe:delayed)" 1
has_result job-grey && fleet_fail "greylisted job already answered"
DELAYED=$(python3 "$TOOL" delayed-item "$LAB_REDIS_PORT" mxprobe:delayed)
fleet_check "requeued job counts its attempt" \
    "$(json_field jobs.0.attempts <<<"$DELAYED")" 1
fleet_check "requeued item keeps the catch-all flag" \
    "$(json_field catch_all <<<"$DELAYED")" False

# Play the coordinator's part: move the due item back to the probes
# stream after the greylisting period (2 s) has passed.
sleep 2.2
fleet_check "delayed items moved" "$(python3 "$TOOL" move-delayed \
    "$LAB_REDIS_PORT" mxprobe:delayed mxprobe:probes)" 1
wait_result job-grey
fleet_check "greylisted address accepted later" \
    "$(result_field job-grey status)" deliverable
fleet_check "attempts counted" "$(result_field job-grey attempts)" 2
fleet_check "no pending probe entries" \
    "$(redis-cli -p "$LAB_REDIS_PORT" XPENDING mxprobe:probes workers |
        head -n 1)" 0
fleet_check "fake servers never saw DATA" \
    "$(cat "$LAB_DIR"/fake-smtp-*.log | grep -Eci 'verb=(DATA|BDAT)')" 0

if [ "$FLEET_FAILED" -ne 0 ]; then
    echo "worker log: $LAB_DIR/worker.log"
    exit 1
fi
echo "worker_fake_smtp: all checks passed"
