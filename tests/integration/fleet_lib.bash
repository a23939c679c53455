# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Helpers of the fleet_*.sh tests: each test starts redis, unbound, the
# coordinator and a worker (plus fake-smtp or Postfix MX hosts), submits
# jobs with plain redis-cli XADD and reads the results back with the
# mxprobe client. Source after scripts/lab/lab.sh and lab_init. Not a test
# itself: CTest runs only *.sh files.

FLEET_FAILED=0

# Starts the coordinator and one worker with the settings in the
# environment (MXPROBE_*); logs go to $LAB_DIR/{coordinator,worker}.log.
fleet_start()
{
    export MXPROBE_REDIS=$LAB_REDIS_URL
    export MXPROBE_DNS=$LAB_DNS
    export MXPROBE_SMTP_PORT=$LAB_SMTP_PORT
    export MXPROBE_HELO_NAME=${MXPROBE_HELO_NAME:-probe.lab.test}
    export MXPROBE_LOG_LEVEL=${MXPROBE_LOG_LEVEL:-debug}
    "$LAB_BUILD_DIR/coordinator/mxprobe-coordinator" \
        >"$LAB_DIR/coordinator.log" 2>&1 &
    lab_track $! coordinator
    "$LAB_BUILD_DIR/worker/mxprobe-worker" --worker-id w1 \
        >"$LAB_DIR/worker.log" 2>&1 &
    FLEET_WORKER_PID=$!
    lab_track "$FLEET_WORKER_PID" worker
}

fleet_cli()
{
    redis-cli -u "$LAB_REDIS_URL" "$@"
}

# fleet_submit ID EMAIL: one job, as any client would add it.
fleet_submit()
{
    printf '%s\0' XADD mxprobe:jobs '*' email "$2" id "$1" batch fleet |
        xargs -0 redis-cli -u "$LAB_REDIS_URL" >/dev/null ||
        lab_fail "XADD of job $1 failed"
}

# fleet_submit_many ID=EMAIL...: plain XADDs inside one MULTI/EXEC, so
# they land at once and the coordinator reads them in one go, as it would
# from a client that pipelines. The emails must be plain words.
fleet_submit_many()
{
    local pair
    {
        echo MULTI
        for pair in "$@"; do
            printf 'XADD mxprobe:jobs * email %s id %s batch fleet\n' \
                "${pair#*=}" "${pair%%=*}"
        done
        echo EXEC
    } | redis-cli -u "$LAB_REDIS_URL" >/dev/null ||
        lab_fail "XADD of $# jobs failed"
}

# Prints the stored result of job ID as JSON, or nothing.
fleet_result()
{
    "$LAB_BUILD_DIR/client/mxprobe" result "$1" 2>/dev/null || true
}

# fleet_field ID JQ_FILTER: one value of a job's result ("null" when the
# job has no result yet).
fleet_field()
{
    fleet_result "$1" | jq -r "$2" 2>/dev/null || echo "no-json"
}

fleet_has_result()
{
    [ "$(fleet_cli EXISTS "mxprobe:result:$1")" = 1 ]
}

# fleet_wait SECONDS ID...: waits until every job has a result.
fleet_wait()
{
    local limit=$1 id deadline
    shift
    deadline=$((SECONDS + limit))
    for id in "$@"; do
        until fleet_has_result "$id"; do
            [ "$SECONDS" -lt "$deadline" ] ||
                lab_fail "no result for job $id within ${limit}s; read" \
                    "$LAB_DIR/worker.log and $LAB_DIR/coordinator.log"
            sleep 0.1
        done
    done
}

fleet_check()
{
    local what=$1 got=$2 want=$3
    if [ "$got" = "$want" ]; then
        echo "ok: $what"
    else
        echo "FAIL: $what: got '$got', want '$want'"
        FLEET_FAILED=1
    fi
}

# fleet_check_match WHAT GOT REGEX
fleet_check_match()
{
    local what=$1 got=$2 regex=$3
    if [[ "$got" =~ $regex ]]; then
        echo "ok: $what ($got)"
    else
        echo "FAIL: $what: got '$got', want a match of /$regex/"
        FLEET_FAILED=1
    fi
}

# fleet_verdict ID WANT: "status reason" of the job's result.
fleet_verdict()
{
    fleet_check "$1 verdict" "$(fleet_field "$1" '.status + " " + .reason')" \
        "$2"
}

# Common end checks: no probe entry or job left pending, nothing on the
# delayed set, no DATA on any fake server, no sanitizer report, the worker
# still alive. Then exits 1 on any failure.
fleet_finish()
{
    local name=$1
    fleet_check "pending probe entries" \
        "$(fleet_cli XPENDING mxprobe:probes workers | head -n 1)" 0
    fleet_check "pending jobs" \
        "$(fleet_cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
    fleet_check "items left on the delayed set" \
        "$(fleet_cli ZCARD mxprobe:delayed)" 0
    fleet_check "DATA or BDAT seen by a fake server" \
        "$(cat "$LAB_DIR"/fake-smtp-*.log 2>/dev/null |
            grep -Ec 'verb=(DATA|BDAT)')" 0
    fleet_check "worker still running" \
        "$(kill -0 "$FLEET_WORKER_PID" 2>/dev/null && echo yes)" yes
    if grep -q "runtime error\|AddressSanitizer\|LeakSanitizer" \
        "$LAB_DIR"/*.log; then
        echo "FAIL: a sanitizer reported an error; read $LAB_DIR/*.log"
        FLEET_FAILED=1
    fi
    [ "$FLEET_FAILED" = 0 ] || lab_fail "$name failed; logs in $LAB_DIR"
    echo "$name: all checks passed"
}
