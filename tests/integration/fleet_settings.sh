#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Settings that only show through the whole fleet (redis, unbound,
# coordinator, worker, scripted MX hosts, the mxprobe client). The fleets
# use source addresses in turn (MXPROBE_SOURCE_ADDRS), a key prefix other
# than mxprobe: (MXPROBE_PREFIX), and Redis over a unix socket and with a
# password (MXPROBE_REDIS). The start-up checks: --help lists every setting
# of the README, an invalid value exits non-zero with a message naming the
# setting, and a wrong Redis password is logged as an authentication
# failure without the password.
#
# Usage: fleet_settings.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

WORKER=$LAB_BUILD_DIR/worker/mxprobe-worker
COORD=$LAB_BUILD_DIR/coordinator/mxprobe-coordinator
CLIENT=$LAB_BUILD_DIR/client/mxprobe
PASSWORD=s3cret-pw-91
WRONG_PASSWORD=wrong-pw-77
# No server listens here: a daemon that failed to exit on a bad setting
# would only retry this socket, never reach a Redis of another test.
NO_REDIS=unix:$LAB_DIR/no-redis.sock

# ------------------------------------------------------ start-up checks

# The settings of the README's table, as "--flag MXPROBE_VAR" lines.
readme_settings()
{
    grep -E '^\| `--[a-z-]+` `MXPROBE_[A-Z_]+`' "$LAB_ROOT/README.md" |
        sed -E 's/^\| `(--[a-z-]+)` `(MXPROBE_[A-Z_]+)`.*/\1 \2/' | sort
}

# The settings that --help lists ("  --flag, MXPROBE_VAR (default ...)").
help_settings()
{
    sed -nE 's/^  (--[a-z-]+), (MXPROBE_[A-Z_]+) .*/\1 \2/p' "$1" | sort
}

README_SETTINGS=$(readme_settings)
fleet_check_match "README lists the settings" \
    "$(wc -l <<<"$README_SETTINGS")" '^(2[0-9]|3[0-9])$'
for prog in "$WORKER" "$COORD"; do
    name=$(basename "$prog")
    rc=0
    MXPROBE_REDIS=$NO_REDIS timeout 5 "$prog" --help \
        >"$LAB_DIR/$name-help.out" 2>&1 || rc=$?
    fleet_check "$name --help exit status" "$rc" 0
    fleet_check "$name --help lists exactly the README's settings" \
        "$(diff <(help_settings "$LAB_DIR/$name-help.out") \
            <(echo "$README_SETTINGS") | grep '^[<>]' | tr '\n' ' ')" ""
done

# check_rejected PROGRAM WHAT REGEX [VAR=VALUE...] -- [ARG...]: the program
# exits non-zero at once and its message matches REGEX.
check_rejected()
{
    local prog=$1 what=$2 regex=$3 name rc=0 out
    local -a vars=()
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    name=$(basename "$prog")
    out=$(env MXPROBE_REDIS="$NO_REDIS" "${vars[@]}" timeout 5 "$prog" "$@" \
        2>&1) || rc=$?
    # Kept for the check, at the end, that no output contains a password.
    echo "$out" >>"$LAB_DIR/rejected.out"
    fleet_check_match "$name, $what: exit status" "$rc" '^[12]$'
    fleet_check_match "$name, $what: message" "$out" "$regex"
}

for prog in "$WORKER" "$COORD"; do
    check_rejected "$prog" "MXPROBE_SMTP_PORT=abc" \
        'invalid value for MXPROBE_SMTP_PORT: "abc"' MXPROBE_SMTP_PORT=abc --
    check_rejected "$prog" "--smtp-port=abc" \
        'invalid value for --smtp-port: "abc"' -- --smtp-port=abc
    check_rejected "$prog" "MXPROBE_RETRY_SCHEDULE=60,30" \
        'retry-schedule \(MXPROBE_RETRY_SCHEDULE.*"60,30"' \
        MXPROBE_RETRY_SCHEDULE=60,30 --
    check_rejected "$prog" "MXPROBE_LOG_LEVEL=loud" \
        'MXPROBE_LOG_LEVEL.*"loud"' MXPROBE_LOG_LEVEL=loud --
    # A typo in the port must not print the password of the URL.
    check_rejected "$prog" "bad Redis URL with a password" \
        'invalid Redis address \\?"redis://\*\*\*@127\.0\.0\.1:abc' \
        "MXPROBE_REDIS=redis://:$PASSWORD@127.0.0.1:abc" --
done
check_rejected "$WORKER" "MXPROBE_SOURCE_ADDRS with a malformed address" \
    'invalid source address "not-an-ip" in MXPROBE_SOURCE_ADDRS' \
    MXPROBE_SOURCE_ADDRS=127.0.0.51,not-an-ip --
# 192.0.2.1 (TEST-NET-1) is only bound to a socket, never connected to.
if ip -o addr show | grep -q ' 192\.0\.2\.1/'; then
    echo "skip: 192.0.2.1 is an address of this host"
else
    check_rejected "$WORKER" "MXPROBE_SOURCE_ADDRS with a foreign address" \
        'source address "192.0.2.1" in MXPROBE_SOURCE_ADDRS.*cannot be used' \
        MXPROBE_SOURCE_ADDRS=127.0.0.52,192.0.2.1 --
fi

# ------------------------------------------------------------- servers

cat >"$LAB_DIR/zone" <<ZONE
d1.test MX 10 mx.src.test
d2.test MX 10 mx.src.test
d3.test MX 10 mx.src.test
d4.test MX 10 mx.src.test
d5.test MX 10 mx.src.test
d6.test MX 10 mx.src.test
mx.src.test A 127.0.0.60
u.test MX 10 mx.u.test
mx.u.test A 127.0.0.61
p.test MX 10 mx.p.test
mx.p.test A 127.0.0.62
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.60 basic
lab_fake_smtp 127.0.0.61 basic
lab_fake_smtp 127.0.0.62 basic

# extra_redis NAME ARG...: one more redis-server in $LAB_DIR/NAME, stopped
# by the lab's cleanup. The caller's ARGs set where it listens.
extra_redis()
{
    local name=$1 dir=$LAB_DIR/$1 pid deadline
    shift
    mkdir -p "$dir"
    redis-server --dir "$dir" --save '' --appendonly no --daemonize no \
        --logfile "$dir/redis.log" "$@" >/dev/null 2>&1 &
    pid=$!
    lab_track "$pid" "redis-$name"
    deadline=$((SECONDS + LAB_START_TIMEOUT))
    until [ -s "$dir/redis.log" ] &&
        grep -qi 'ready to accept connections' "$dir/redis.log"; do
        lab_check_alive "$pid" "redis-server $name" "$dir/redis.log"
        [ "$SECONDS" -le "$deadline" ] ||
            lab_fail "redis-server $name did not start; read $dir/redis.log"
        sleep 0.05
    done
}

SOCK=$LAB_DIR/unix/redis.sock
extra_redis unix --port 0 --unixsocket "$SOCK" --unixsocketperm 700
lab_free_port
PW_PORT=$LAB_FREE_PORT
extra_redis password --port "$PW_PORT" --bind 127.0.0.1 \
    --requirepass "$PASSWORD"

URL_PREFIX=$LAB_REDIS_URL
URL_UNIX=unix:$SOCK
URL_PW=redis://:$PASSWORD@127.0.0.1:$PW_PORT

cli_prefix() { redis-cli -u "$URL_PREFIX" "$@"; }
cli_unix() { redis-cli -s "$SOCK" "$@"; }
# redis-cli 7.0 reads the empty user name of "redis://:PASSWORD@" as a user
# name, so the password goes in with -a.
cli_pw()
{
    redis-cli -h 127.0.0.1 -p "$PW_PORT" -a "$PASSWORD" --no-auth-warning "$@"
}

# Every command the prefix fleet's Redis runs, scripts' commands included.
redis-cli -u "$URL_PREFIX" MONITOR >"$LAB_DIR/monitor.out" 2>&1 &
lab_track "$!" redis-monitor
lab_wait_log "$LAB_DIR/monitor.out" '^OK' ||
    lab_fail "redis-cli MONITOR did not start"

# ------------------------------------------------------------- fleets

fleet_env
unset MXPROBE_REDIS
export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_GREETING_TIMEOUT=5
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_MX_RATE=1000
export MXPROBE_MX_CONCURRENCY=20

# start_pair TAG URL [VAR=VALUE...]: a coordinator and a worker on Redis
# URL, logs in $LAB_DIR/TAG-{coordinator,worker}.log.
declare -A PID_OF
start_pair()
{
    local tag=$1 url=$2
    shift 2
    env MXPROBE_REDIS="$url" "$@" "$COORD" --worker-id "c-$tag" \
        >"$LAB_DIR/$tag-coordinator.log" 2>&1 &
    PID_OF[$tag-coordinator]=$!
    lab_track "$!" "coordinator-$tag"
    env MXPROBE_REDIS="$url" "$@" "$WORKER" --worker-id "w-$tag" \
        >"$LAB_DIR/$tag-worker.log" 2>&1 &
    PID_OF[$tag-worker]=$!
    lab_track "$!" "worker-$tag"
}

start_pair prefix "$URL_PREFIX" MXPROBE_PREFIX=other: \
    MXPROBE_SOURCE_ADDRS=127.0.0.51,127.0.0.52
start_pair unix "$URL_UNIX"
start_pair password "$URL_PW"
# Daemons with a wrong password and with none must log why Redis rejects
# them, without the password.
env MXPROBE_REDIS="redis://:$WRONG_PASSWORD@127.0.0.1:$PW_PORT" "$WORKER" \
    --worker-id w-wrongpw >"$LAB_DIR/wrongpw-worker.log" 2>&1 &
lab_track "$!" worker-wrongpw
env MXPROBE_REDIS="redis://:$WRONG_PASSWORD@127.0.0.1:$PW_PORT" "$COORD" \
    --worker-id c-wrongpw >"$LAB_DIR/wrongpw-coordinator.log" 2>&1 &
lab_track "$!" coordinator-wrongpw
env MXPROBE_REDIS="redis://127.0.0.1:$PW_PORT" "$WORKER" \
    --worker-id w-nopw >"$LAB_DIR/nopw-worker.log" 2>&1 &
lab_track "$!" worker-nopw

# Jobs, as plain XADDs.
for n in 1 2 3 4 5 6; do
    cli_prefix XADD other:jobs '*' email "exists@d$n.test" id "s$n" \
        batch b1 >/dev/null
done
cli_prefix XADD other:jobs '*' email nobody@d1.test id s-no batch b1 \
    >/dev/null
cli_prefix XADD other:jobs '*' email no-at-sign id s-syntax batch b1 \
    reply other:replies >/dev/null
cli_unix XADD mxprobe:jobs '*' email exists@u.test id u1 >/dev/null
cli_unix XADD mxprobe:jobs '*' email nobody@u.test id u2 >/dev/null
cli_pw XADD mxprobe:jobs '*' email exists@p.test id p1 >/dev/null
cli_pw XADD mxprobe:jobs '*' email nobody@p.test id p2 >/dev/null

# wait_results SECONDS CLI KEY_PREFIX ID...: waits for every result key.
wait_results()
{
    local deadline=$((SECONDS + $1)) cli=$2 prefix=$3 id
    shift 3
    for id in "$@"; do
        until [ "$("$cli" EXISTS "${prefix}result:$id")" = 1 ]; do
            [ "$SECONDS" -lt "$deadline" ] ||
                lab_fail "no ${prefix}result:$id within the wait; logs" \
                    "in $LAB_DIR"
            sleep 0.1
        done
    done
}

wait_results 20 cli_prefix other: s1 s2 s3 s4 s5 s6 s-no s-syntax
wait_results 10 cli_unix mxprobe: u1 u2
wait_results 10 cli_pw mxprobe: p1 p2

# verdict_via URL PREFIX ID: "status reason" as the client reads it.
verdict_via()
{
    local json
    json=$(MXPROBE_REDIS=$1 MXPROBE_PREFIX=$2 "$CLIENT" result "$3" \
        2>/dev/null || true)
    if [ -z "$json" ]; then
        echo "no-result"
        return
    fi
    jq -r '.status + " " + .reason' <<<"$json" 2>/dev/null || echo "no-json"
}

# ------------------------------------------------- MXPROBE_PREFIX=other:

for n in 1 2 3 4 5 6; do
    fleet_check "prefix: s$n verdict" \
        "$(verdict_via "$URL_PREFIX" other: "s$n")" "deliverable accepted"
done
fleet_check "prefix: s-no verdict" \
    "$(verdict_via "$URL_PREFIX" other: s-no)" \
    "undeliverable mailbox_not_found"
fleet_check "prefix: s-syntax verdict" \
    "$(verdict_via "$URL_PREFIX" other: s-syntax)" "undeliverable syntax"
fleet_check "prefix: other:results entries" \
    "$(cli_prefix XLEN other:results)" 8
fleet_check "prefix: other:batch:b1 done" \
    "$(cli_prefix HGET other:batch:b1 done)" 8
fleet_check "prefix: reply list other:replies" \
    "$(cli_prefix LLEN other:replies)" 1
fleet_check "prefix: domain hash other:domain:d1.test" \
    "$(cli_prefix HGET other:domain:d1.test state)" ok
fleet_check "prefix: pending jobs on other:jobs" \
    "$(cli_prefix XPENDING other:jobs coordinator | head -n 1)" 0
fleet_check "prefix: pending probes on other:probes" \
    "$(cli_prefix XPENDING other:probes workers | head -n 1)" 0

# mxprobe submit with the prefix: jobs into other:jobs, CSV back.
printf 'exists@d2.test\nghost@d3.test\n' >"$LAB_DIR/submit.txt"
rc=0
MXPROBE_REDIS=$URL_PREFIX MXPROBE_PREFIX=other: timeout 20 "$CLIENT" submit \
    "$LAB_DIR/submit.txt" >"$LAB_DIR/submit.csv" 2>"$LAB_DIR/submit.err" ||
    rc=$?
fleet_check "prefix: mxprobe submit exit status" "$rc" 0
fleet_check "prefix: mxprobe submit rows" \
    "$(grep -Ec '^"?(exists@d2\.test"?,"?deliverable|ghost@d3\.test"?,"?undeliverable)' \
        "$LAB_DIR/submit.csv")" 2

# The fleet's commands so far; the reads below name mxprobe: on purpose.
fleet_check "prefix: commands that named mxprobe:" \
    "$(grep -c '"mxprobe:' "$LAB_DIR/monitor.out" || true)" 0
fleet_check_match "prefix: MONITOR saw the workers' writes" \
    "$(grep -c '"other:result:s1"' "$LAB_DIR/monitor.out" || true)" \
    '^[1-9][0-9]*$'
fleet_check "prefix: the default prefix finds no result" \
    "$(verdict_via "$URL_PREFIX" mxprobe: s1)" no-result
fleet_check "prefix: keys under mxprobe:" \
    "$(cli_prefix --scan --pattern 'mxprobe:*' | head -n 5 | tr '\n' ' ')" ""
fleet_check_match "prefix: keys under other:" \
    "$(cli_prefix --scan --pattern 'other:*' | wc -l)" '^[1-9][0-9]*$'

# ------------------------------------------------- MXPROBE_SOURCE_ADDRS

SRC_LOG=$(lab_fake_log 127.0.0.60)
peers=$(grep -o 'ev=accept peer=[0-9.]*' "$SRC_LOG" |
    sed 's/.*peer=//' || true)
n51=$(grep -cx 127.0.0.51 <<<"$peers" || true)
n52=$(grep -cx 127.0.0.52 <<<"$peers" || true)
fleet_check "source addrs: connections from other addresses" \
    "$(grep -vxE '127\.0\.0\.5[12]' <<<"$peers" | grep -c . || true)" 0
fleet_check_match "source addrs: connections from 127.0.0.51" "$n51" \
    '^[1-9][0-9]*$'
fleet_check_match "source addrs: connections from 127.0.0.52" "$n52" \
    '^[1-9][0-9]*$'
fleet_check "source addrs: used in turn (counts differ by at most one)" \
    "$(( n51 - n52 <= 1 && n52 - n51 <= 1 ))" 1
fleet_check "source addrs: the worker counted them" \
    "$(lab_count "$LAB_DIR/prefix-worker.log" 'ev=started .*sources=2')" 1

# ------------------------------------------------- MXPROBE_REDIS forms

fleet_check "unix socket: u1 verdict" \
    "$(verdict_via "$URL_UNIX" mxprobe: u1)" "deliverable accepted"
fleet_check "unix socket: u2 verdict" \
    "$(verdict_via "$URL_UNIX" mxprobe: u2)" "undeliverable mailbox_not_found"
fleet_check "password: p1 verdict" \
    "$(verdict_via "$URL_PW" mxprobe: p1)" "deliverable accepted"
fleet_check "password: p2 verdict" \
    "$(verdict_via "$URL_PW" mxprobe: p2)" "undeliverable mailbox_not_found"

for who in wrongpw-worker wrongpw-coordinator nopw-worker; do
    lab_wait_log "$LAB_DIR/$who.log" 'authentication failed' 5 || true
    fleet_check_match "$who: logs the authentication failure" \
        "$(grep -m1 'authentication failed' "$LAB_DIR/$who.log" || true)" \
        'lvl=(warn|error) .*ev=redis_disconnect .*err="authentication failed: '
done
fleet_check_match "wrong password: the server's reason follows" \
    "$(grep -m1 'authentication failed' "$LAB_DIR/wrongpw-worker.log")" \
    'WRONGPASS|invalid password'
fleet_check_match "no password: the server's reason follows" \
    "$(grep -m1 'authentication failed' "$LAB_DIR/nopw-worker.log")" \
    'NOAUTH'
rc=0
MXPROBE_REDIS="redis://:$WRONG_PASSWORD@127.0.0.1:$PW_PORT" timeout 5 \
    "$CLIENT" result p1 >/dev/null 2>"$LAB_DIR/wrongpw-client.log" || rc=$?
fleet_check "wrong password: client exit status" "$rc" 1
fleet_check_match "wrong password: client message" \
    "$(cat "$LAB_DIR/wrongpw-client.log")" 'authentication .*failed'
fleet_check "password in any log or output" \
    "$(cat "$LAB_DIR"/*.log "$LAB_DIR"/*.out "$LAB_DIR"/*.err |
        grep -Fc -e "$PASSWORD" -e "$WRONG_PASSWORD" || true)" 0

# ------------------------------------------------------------- the end

# Every fleet daemon stops cleanly on SIGTERM.
for tag in prefix unix password; do
    for role in coordinator worker; do
        pid=${PID_OF[$tag-$role]}
        if ! kill -0 "$pid" 2>/dev/null; then
            fleet_fail "$tag $role is not running; read" \
                "$LAB_DIR/$tag-$role.log"
            continue
        fi
        kill -TERM "$pid"
        rc=0
        wait "$pid" || rc=$?
        fleet_check "$tag $role exit status after SIGTERM" "$rc" 0
    done
done

fleet_check "DATA or BDAT seen by a fake server" \
    "$(cat "$LAB_DIR"/fake-smtp-*.log | grep -Ec 'verb=(DATA|BDAT)' || true)" 0
fleet_check_sanitizers
fleet_end fleet_settings
echo "fleet_settings: all checks passed"
