#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Per-MX limits on fallback, through the whole fleet. Two domains have
# different first MX hosts, both dead (nothing listens there), and share a
# second MX whose RCPT replies take two seconds. With MXPROBE_MX_CONCURRENCY
# at 1, a session that falls back to the shared host must hold that host's
# lease (mx:<host>:inflight) and give back the dead host's, so the two
# sessions reach the shared host one after the other, never together.
#
# Usage: fleet_mx_fallback.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

printf '%s\n' 'rcpt alice@* delay=2s 250 2.1.5 Ok' \
    'rcpt bob@* delay=2s 250 2.1.5 Ok' \
    'rcpt * 550 5.1.1 No such user' >"$LAB_DIR/slow.scn"
cat >"$LAB_DIR/zone" <<ZONE
fba.test MX 10 mx1.fba.test
fba.test MX 20 mx2.shared.test
fbb.test MX 10 mx1.fbb.test
fbb.test MX 20 mx2.shared.test
mx1.fba.test A 127.0.0.61
mx1.fbb.test A 127.0.0.62
mx2.shared.test A 127.0.0.63
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.63 "$LAB_DIR/slow.scn"
SHARED_LOG=$LAB_FAKE_LOG

export MXPROBE_MX_CONCURRENCY=1
export MXPROBE_MX_RATE=1000
export MXPROBE_CONNECT_TIMEOUT=1
export MXPROBE_RCPT_TIMEOUT=10
export MXPROBE_DNS_TIMEOUT=0.5
fleet_start

inflight()
{
    fleet_cli ZCARD "mxprobe:mx:$1:inflight"
}

fleet_submit_many fb-a=alice@fba.test fb-b=bob@fbb.test

# Sample the shared host's lease set until both jobs are answered.
max_shared=0
deadline=$((SECONDS + 40))
until fleet_has_result fb-a && fleet_has_result fb-b; do
    [ "$SECONDS" -lt "$deadline" ] ||
        lab_fail "no results within 40s; logs in $LAB_DIR"
    n=$(inflight mx2.shared.test)
    [ "$n" -le "$max_shared" ] || max_shared=$n
    sleep 0.05
done

fleet_verdict fb-a "deliverable accepted"
fleet_verdict fb-b "deliverable accepted"
fleet_check "fb-a answered by" "$(fleet_field fb-a .mx)" mx2.shared.test
fleet_check "fb-b answered by" "$(fleet_field fb-b .mx)" mx2.shared.test
fleet_check "most leases seen on the shared host" "$max_shared" 1

# Connections open at once on the shared host, from its transcript: +1 at
# each accept, -1 at each close, in time order.
max_open=$(grep -E 'ev=(accept|close)' "$SHARED_LOG" |
    sed -E 's/^t=([0-9.]+) .*ev=(accept|close).*/\1 \2/' |
    sort -s -k1,1n |
    awk '$2 == "accept" { n++; if (n > m) m = n }
         $2 == "close" { n-- } END { print m + 0 }')
fleet_check "connections open at once on the shared host" "$max_open" 1
fleet_check "sessions on the shared host" \
    "$(lab_count "$SHARED_LOG" 'ev=accept')" 2
fleet_check_match "a fallback waited for the shared host's lease" \
    "$(lab_count "$LAB_DIR/worker.log" \
        'ev=mx_limited .*mx=mx2.shared.test .*fallback=yes')" '^[1-9]'

# Every lease is given back once the sessions end.
fleet_check "leases left on mx1.fba.test" "$(inflight mx1.fba.test)" 0
fleet_check "leases left on mx1.fbb.test" "$(inflight mx1.fbb.test)" 0
fleet_check "leases left on the shared host" "$(inflight mx2.shared.test)" 0
fleet_finish fleet_mx_fallback
