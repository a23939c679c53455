# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Helpers of the tests that run the daemons: each test starts redis,
# unbound, the coordinator and workers (plus fake-smtp or Postfix MX hosts),
# submits jobs with plain redis-cli XADD and reads the results back with the
# mxprobe client. The check helpers print "ok:" or "FAIL:" per check and
# record failures in FLEET_FAILED. Source after scripts/lab/lab.sh and
# lab_init. Not a test itself: CTest runs only *.sh files.

FLEET_FAILED=0

# Exports the lab's Redis, DNS and SMTP port to the daemons. A HELO name or
# log level that the test exported before is kept.
fleet_env()
{
    export MXPROBE_REDIS=$LAB_REDIS_URL
    export MXPROBE_DNS=$LAB_DNS
    export MXPROBE_SMTP_PORT=$LAB_SMTP_PORT
    export MXPROBE_HELO_NAME=${MXPROBE_HELO_NAME:-probe.lab.test}
    export MXPROBE_LOG_LEVEL=${MXPROBE_LOG_LEVEL:-debug}
}

# fleet_start_coordinator LOG [ARG...]: starts a coordinator with the
# arguments ARG, its output in LOG, and sets FLEET_COORD_PID.
fleet_start_coordinator()
{
    local log=$1
    shift
    "$LAB_BUILD_DIR/coordinator/mxprobe-coordinator" "$@" >"$log" 2>&1 &
    FLEET_COORD_PID=$!
    lab_track "$FLEET_COORD_PID" coordinator
}

# fleet_start_worker ID LOG: starts worker ID with its output in LOG, and
# sets FLEET_WORKER_PID.
fleet_start_worker()
{
    "$LAB_BUILD_DIR/worker/mxprobe-worker" --worker-id "$1" >"$2" 2>&1 &
    FLEET_WORKER_PID=$!
    lab_track "$FLEET_WORKER_PID" "worker-$1"
}

# Starts the coordinator and worker w1 with the settings in the
# environment (MXPROBE_*); logs go to $LAB_DIR/{coordinator,worker}.log.
fleet_start()
{
    fleet_env
    fleet_start_coordinator "$LAB_DIR/coordinator.log"
    fleet_start_worker w1 "$LAB_DIR/worker.log"
}

# fleet_scenario NAME LINE...: writes the fake-smtp scenario
# $LAB_DIR/NAME.scn, one rule a line.
fleet_scenario()
{
    local name=$1
    shift
    printf '%s\n' "$@" >"$LAB_DIR/$name.scn"
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

# fleet_verdict_of ID: prints "status reason" of the job's result.
fleet_verdict_of()
{
    fleet_field "$1" '.status + " " + .reason'
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

# Prints the "done" count of batch NAME, 0 before its first result.
fleet_batch_done()
{
    local n
    n=$(fleet_cli HGET "mxprobe:batch:$1" "done")
    echo "${n:-0}"
}

# fleet_wait_batch SECONDS NAME COUNT: waits until batch NAME counts COUNT
# results. Returns 1 when SECONDS pass first.
fleet_wait_batch()
{
    local deadline=$((SECONDS + $1))
    until [ "$(fleet_batch_done "$2")" -ge "$3" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.3
    done
}

# Prints the id field of every entry of the results stream, sorted, one a
# line. A Lua script reads them, so the binary msgpack field of an entry
# cannot break the line-based parsing.
fleet_result_ids()
{
    local script="local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'id' then out[#out + 1] = f[i + 1] end
  end
end
return out"
    fleet_cli --raw EVAL "$script" 1 mxprobe:results | sort
}

# fleet_fail MESSAGE: records a failed check.
fleet_fail()
{
    echo "FAIL: $*"
    FLEET_FAILED=1
}

# fleet_check WHAT GOT WANT
fleet_check()
{
    local what=$1 got=$2 want=$3
    if [ "$got" = "$want" ]; then
        echo "ok: $what"
    else
        fleet_fail "$what: got '$got', want '$want'"
    fi
}

# fleet_check_match WHAT GOT REGEX
fleet_check_match()
{
    local what=$1 got=$2 regex=$3
    if [[ "$got" =~ $regex ]]; then
        echo "ok: $what ($got)"
    else
        fleet_fail "$what: got '$got', want a match of /$regex/"
    fi
}

# fleet_verdict ID WANT: "status reason" of the job's result.
fleet_verdict()
{
    fleet_check "$1 verdict" "$(fleet_verdict_of "$1")" "$2"
}

# fleet_check_sanitizers [LOG...]: records a failed check when ASan, LSan or
# UBSan wrote a report into one of the logs, by default every log of the
# test.
fleet_check_sanitizers()
{
    local where="$*"
    if [ $# -eq 0 ]; then
        set -- "$LAB_DIR"/*.log
        where="$LAB_DIR/*.log"
    fi
    if grep -q "runtime error\|AddressSanitizer\|LeakSanitizer" "$@" \
        2>/dev/null; then
        fleet_fail "a sanitizer reported an error; read $where"
    fi
}

# fleet_end NAME: exits 1 when a check failed.
fleet_end()
{
    [ "$FLEET_FAILED" = 0 ] || lab_fail "$1 failed; logs in $LAB_DIR"
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
    fleet_check_sanitizers
    fleet_end "$name"
    echo "$name: all checks passed"
}
