#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The coordinator against a real redis-server and a real unbound: jobs go in
# with redis-cli XADD, and the test checks what the coordinator wrote back.
# Covered: syntax answers (CR/LF injection, empty, missing email field),
# dead domains (NXDOMAIN, null MX, no mail server, SERVFAIL, REFUSED,
# timeout), live domains turned into probe items (explicit and implicit MX),
# one MX query for 20 jobs of one domain, the catch-all plan (first item
# tests, the rest are held until a decision is published or catchall_wait
# passes), the delayed set, acks, facts cached in the domain hash across a
# restart, and a clean exit on SIGTERM. Usage: coordinator_direct.sh
# BUILD_DIR. Runs as root (the lab needs it).

set -uo pipefail

# shellcheck source=../../scripts/lab/lab.sh
source "$(dirname "$0")/../../scripts/lab/lab.sh"
# shellcheck source=expect_lib.bash
source "$(dirname "$0")/expect_lib.bash"

P=mxprobe:

rcli()
{
    redis-cli -h 127.0.0.1 -p "$LAB_REDIS_PORT" "$@"
}

# Prints one field of the msgpack map in result:<ID>, decoded by Redis' own
# Lua msgpack library: "(nil)" for nil, "(none)" when the key is missing.
result_field()
{
    rcli --raw EVAL "
        local v = redis.call('GET', KEYS[1])
        if not v then return '(none)' end
        local f = cmsgpack.unpack(v)[ARGV[1]]
        if f == nil then return '(nil)' end
        return tostring(f)" 1 "${P}result:$1" "$2"
}

# Prints the status field of the results stream entry for job ID.
stream_status()
{
    rcli --raw EVAL "
        for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
            local f, id, st = e[2], nil, nil
            for i = 1, #f, 2 do
                if f[i] == 'id' then id = f[i + 1] end
                if f[i] == 'status' then st = f[i + 1] end
            end
            if id == ARGV[1] then return st end
        end
        return '(none)'" 1 "${P}results" "$1"
}

# Prints one line per probe item: domain, job count, catch-all fields and
# the MX hosts with their addresses.
probe_items()
{
    rcli --raw EVAL "
        local out = {}
        for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
            local f = e[2]
            for i = 1, #f, 2 do
                if f[i] == 'item' then
                    local it = cmsgpack.unpack(f[i + 1])
                    local mx = {}
                    for _, h in ipairs(it.mx or {}) do
                        table.insert(mx, h.name .. '=' ..
                            table.concat(h.ips or {}, ','))
                    end
                    table.insert(out, 'domain=' .. tostring(it.domain) ..
                        ' jobs=' .. #(it.jobs or {}) ..
                        ' local=' .. tostring(it.catchall_local) ..
                        ' catch_all=' .. tostring(it.catch_all) ..
                        ' mx=' .. table.concat(mx, ';'))
                end
            end
        end
        return out" 1 "${P}probes"
}

pending_jobs()
{
    rcli XPENDING "${P}jobs" coordinator | head -1
}

no_pending_jobs()
{
    [ "$(pending_jobs)" = 0 ]
}

# wait_for WHAT SECONDS COMMAND...: polls until COMMAND succeeds.
wait_for()
{
    local what=$1 secs=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        if [ "$SECONDS" -gt "$deadline" ]; then
            fail "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.1
    done
}

result_exists()
{
    [ "$(rcli EXISTS "${P}result:$1")" = 1 ]
}

item_count_is()
{
    [ "$(probe_items | grep -c -- "$1")" = "$2" ]
}

submit()
{
    rcli XADD "${P}jobs" '*' "$@" >/dev/null
}

# submit_many ID_PREFIX LOCAL_PREFIX DOMAIN N: N jobs in one script, so one
# XREADGROUP sees them together, as with a client that pipelines.
submit_many()
{
    rcli EVAL "
        for i = 1, tonumber(ARGV[4]) do
            redis.call('XADD', KEYS[1], '*', 'email',
                ARGV[2] .. i .. '@' .. ARGV[3], 'id', ARGV[1] .. i)
        end" 1 "${P}jobs" "$@" >/dev/null
}

start_coordinator()
{
    COORD_RUN=$((${COORD_RUN:-0} + 1))
    COORD_LOG=$LAB_DIR/coordinator.$COORD_RUN.log
    MXPROBE_REDIS=$LAB_REDIS_URL MXPROBE_DNS=$LAB_DNS \
        MXPROBE_DNS_TIMEOUT=0.3 MXPROBE_DNS_TRIES=2 \
        MXPROBE_BATCH_SIZE=5 MXPROBE_CATCHALL_WAIT=4 \
        MXPROBE_WORKER_ID=coord-test MXPROBE_LOG_LEVEL=debug \
        MXPROBE_CLAIM_IDLE=${COORD_CLAIM_IDLE:-300} \
        "$LAB_BUILD_DIR/coordinator/mxprobe-coordinator" \
        >"$COORD_LOG" 2>&1 &
    COORD_PID=$!
    lab_track "$COORD_PID" mxprobe-coordinator
    lab_wait_log "$COORD_LOG" 'ev=redis_ready conn=read' ||
        lab_fail "coordinator did not connect; see $COORD_LOG"
}

# Sends SIGTERM and checks the exit status.
stop_coordinator()
{
    local rc
    kill -TERM "$COORD_PID"
    wait "$COORD_PID"
    rc=$?
    expect_eq "coordinator exit status after SIGTERM" "$rc" 0
}

lab_init "${1:-}"
lab_redis
cat >"$LAB_DIR/zone" <<'EOF'
live.test MX 10 mx1.live.test
live.test MX 20 mx2.live.test
mx1.live.test A 127.0.0.2
mx2.live.test A 127.0.0.3
bulk.test MX 10 mx.bulk.test
mx.bulk.test A 127.0.0.4
implicit.test A 127.0.0.5
nullmx.test MX 0 .
nomail.test TXT nomail
deadhost.test MX 10 gone.deadhost.test
missing.test NXDOMAIN
broken.test SERVFAIL
refused.test REFUSED
slow.test TIMEOUT
EOF
lab_dns "$LAB_DIR/zone"

# Jobs queued before the first coordinator ever ran must still be read.
submit email "$(printf 'a@b.test\r\nDATA')" id syn-crlf
submit email '' id syn-empty
submit id syn-missing note 'no email field'
submit email 'no-at-sign' id syn-noat batch b1 reply replies:1

start_coordinator

# -------------------------------------------------------------- syntax
for id in syn-crlf syn-empty syn-missing syn-noat; do
    wait_for "result:$id" 10 result_exists "$id" || continue
    expect_eq "$id status" "$(result_field "$id" status)" undeliverable
    expect_eq "$id reason" "$(result_field "$id" reason)" syntax
    expect_eq "$id address" "$(result_field "$id" address)" "(nil)"
    expect_eq "$id smtp" "$(result_field "$id" smtp)" "(nil)"
    expect_eq "$id stream status" "$(stream_status "$id")" undeliverable
done
# CR and LF are kept out of the stored email: they become '?'.
expect_eq "CR/LF email sanitised" "$(result_field syn-crlf email)" \
    'a@b.test??DATA'
expect_eq "missing email stored empty" "$(result_field syn-missing email)" ""
expect_eq "reply list got the result" "$(rcli LLEN replies:1)" 1
expect_eq "batch counter done" "$(rcli HGET "${P}batch:b1" done)" 1

# -------------------------------------------------------------- dead domains
declare -A DEAD=(
    [dead-nx]="user@missing.test undeliverable domain_not_found"
    [dead-null]="user@nullmx.test undeliverable null_mx"
    [dead-nomail]="user@nomail.test undeliverable no_mail_server"
    [dead-nohost]="user@deadhost.test undeliverable no_mail_server"
    [dead-servfail]="user@broken.test unknown dns_error"
    [dead-refused]="user@refused.test unknown dns_error"
    [dead-timeout]="user@slow.test unknown dns_error"
)
for id in "${!DEAD[@]}"; do
    read -r email _ _ <<<"${DEAD[$id]}"
    submit email "$email" id "$id"
done
for id in "${!DEAD[@]}"; do
    read -r email status reason <<<"${DEAD[$id]}"
    wait_for "result:$id" 15 result_exists "$id" || continue
    expect_eq "$id status" "$(result_field "$id" status)" "$status"
    expect_eq "$id reason" "$(result_field "$id" reason)" "$reason"
    expect_eq "$id address" "$(result_field "$id" address)" "$email"
    expect_eq "$id mx" "$(result_field "$id" mx)" "(nil)"
    expect_eq "$id stream status" "$(stream_status "$id")" "$status"
done
expect_eq "nullmx.test hash state" \
    "$(rcli HGET "${P}domain:nullmx.test" state)" null_mx
expect_eq "missing.test hash state" \
    "$(rcli HGET "${P}domain:missing.test" state)" nxdomain
expect_eq "broken.test hash state" \
    "$(rcli HGET "${P}domain:broken.test" state)" dns_error
expect_match "dns_error logged as a warning" \
    "$(grep 'domain=broken.test' "$COORD_LOG")" \
    'lvl=warn .*ev=dns_failed'
# SERVFAIL is retried dns_tries times, then given up.
expect_eq "SERVFAIL tried twice" "$(lab_dns_count broken.test MX)" 2

# -------------------------------------------------------------- live domains
submit_many bulk- user bulk.test 20
submit email 'Alice@Implicit.TEST' id live-implicit
wait_for "bulk.test catch-all probe item" 15 \
    item_count_is 'domain=bulk.test jobs=5 local=[a-z]' 1
wait_for "implicit.test probe item" 15 \
    item_count_is 'domain=implicit.test' 1
expect_eq "one MX query for 20 jobs of bulk.test" \
    "$(lab_dns_count bulk.test MX)" 1
expect_eq "one A query for the MX host of bulk.test" \
    "$(lab_dns_count mx.bulk.test A)" 1
expect_match "implicit MX is the domain itself" \
    "$(probe_items | grep 'domain=implicit.test')" \
    'mx=implicit.test=127.0.0.5$'
expect_match "catch-all local part looks like a mailbox" \
    "$(probe_items | grep 'domain=bulk.test')" \
    'local=[a-z]+\.[a-z]+[0-9]{2} '
expect_eq "catchall_pending stored" \
    "$(rcli HEXISTS "${P}domain:bulk.test" catchall_pending)" 1
# 15 jobs of bulk.test are held for the catch-all decision.
expect_eq "held jobs stay pending" "$(pending_jobs)" 15
wait_for "held bulk.test jobs released after catchall_wait" 10 \
    item_count_is 'domain=bulk.test jobs=5 local=nil catch_all=nil' 3
expect_eq "bulk.test jobs all acked" "$(pending_jobs)" 0
expect_match "catchall_wait expiry logged" \
    "$(cat "$COORD_LOG")" 'ev=catchall_wait_expired held=15'

# live.test: a published decision releases the held jobs with the flag.
submit_many live- person live.test 7
wait_for "live.test first item" 10 \
    item_count_is 'domain=live.test jobs=5 local=[a-z]' 1
expect_match "MX hosts in preference order with addresses" \
    "$(probe_items | grep 'domain=live.test')" \
    'mx=mx1.live.test=127.0.0.2;mx2.live.test=127.0.0.3$'
expect_eq "live.test held jobs" "$(pending_jobs)" 2
rcli EVAL "redis.call('PUBLISH', KEYS[1], cmsgpack.pack({
    domain = ARGV[1], catch_all = true, checked_at = tonumber(ARGV[2])}))" \
    1 "${P}catchall" live.test "$(date +%s%3N)" >/dev/null
wait_for "live.test held jobs released with catch_all=true" 5 \
    item_count_is 'domain=live.test jobs=2 local=nil catch_all=true' 1
expect_eq "live.test jobs all acked" "$(pending_jobs)" 0
expect_match "live.test hash has mx" \
    "$(rcli HGET "${P}domain:live.test" mx)" '^10 mx1.live.test 20 mx2.live.test$'

# -------------------------------------------------------------- delayed set
rcli EVAL "redis.call('ZADD', KEYS[1], 1, cmsgpack.pack({domain = 'delayed.test',
    mx = {}, jobs = {}}))" 1 "${P}delayed" >/dev/null
wait_for "due delayed item moved to the probes stream" 5 \
    item_count_is 'domain=delayed.test' 1
expect_eq "delayed set emptied" "$(rcli ZCARD "${P}delayed")" 0

# -------------------------------------------------------------- restart
stop_coordinator
expect_match "stop logged" "$(tail -3 "$COORD_LOG")" \
    'ev=stopped'
# The worker would have written the decision into the hash.
rcli HSET "${P}domain:bulk.test" catch_all 0 >/dev/null
start_coordinator
submit email 'again@live.test' id live-again
submit email 'again@bulk.test' id bulk-again
submit email 'again@nullmx.test' id dead-again
wait_for "result:dead-again from cached facts" 10 result_exists dead-again
expect_eq "dead-again reason" "$(result_field dead-again reason)" null_mx
wait_for "bulk.test item with the cached flag" 10 \
    item_count_is 'domain=bulk.test jobs=1 local=nil catch_all=false' 1
expect_eq "no new MX query for cached nullmx.test" \
    "$(lab_dns_count nullmx.test MX)" 1
expect_eq "no new MX query for cached bulk.test" \
    "$(lab_dns_count bulk.test MX)" 1
wait_for "all jobs acked after restart" 10 no_pending_jobs
stop_coordinator

# -------------------------------------------------------------- takeover
# Entries left pending by a consumer that died are taken over after
# claim_idle; one delivered max_deliveries (5) times is dead-lettered.
claim_live=$(rcli XADD "${P}jobs" '*' email ghost@live.test id claim-live)
claim_dead=$(rcli XADD "${P}jobs" '*' email ghost@nullmx.test id claim-dead)
rcli XREADGROUP GROUP coordinator ghost COUNT 10 STREAMS "${P}jobs" '>' \
    >/dev/null
rcli XCLAIM "${P}jobs" coordinator ghost 0 "$claim_dead" RETRYCOUNT 5 \
    JUSTID >/dev/null
expect_eq "ghost holds two entries" "$(pending_jobs)" 2
COORD_CLAIM_IDLE=1 start_coordinator
wait_for "result:claim-dead" 10 result_exists claim-dead
expect_eq "claim-dead status" "$(result_field claim-dead status)" unknown
expect_eq "claim-dead reason" "$(result_field claim-dead reason)" \
    temporary_failure
expect_match "claim-dead copied to the dead stream" \
    "$(rcli XRANGE "${P}dead" - +)" "$claim_dead"
wait_for "claimed live.test job forwarded" 10 \
    item_count_is 'domain=live.test jobs=1 local=' 2
# The item's msgpack carries the jobs entry id as plain text.
expect_eq "a probe item carries the claimed entry" \
    "$(rcli XRANGE "${P}probes" - + | grep -c "$claim_live")" 1
wait_for "taken-over jobs acked" 10 no_pending_jobs
stop_coordinator

echo "coordinator_direct: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
