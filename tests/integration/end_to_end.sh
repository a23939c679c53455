#!/usr/bin/env bash
# The whole path: 59 jobs (11 domains, bad syntax, injection attempts) go
# in with plain redis-cli XADD and come out as msgpack verdicts, through a
# real unbound, a real Postfix, the coordinator and a worker. Checks that
# every job gets exactly one result with the expected status and reason,
# that unbound saw one MX query per domain, and that Postfix never got DATA.
#
# Usage: end_to_end.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

MX_IP=127.0.0.10     # Postfix: mail.test, other.test, implicit.test, catch-all
DEAD_IP=127.0.0.12   # nothing listens here: the dead first MX

cat >"$LAB_DIR/zone" <<ZONE
mail.test MX 10 mx.mail.test
mx.mail.test A $MX_IP
other.test MX 10 mx.mail.test
catchall.test MX 10 mx.mail.test
implicit.test A $MX_IP
deadfirst.test MX 10 dead.deadfirst.test
deadfirst.test MX 20 mx.mail.test
dead.deadfirst.test A $DEAD_IP
nullmx.test MX 0 .
nomail.test TXT no-mail-here
ghost.test MX 10 host.ghost.test
host.ghost.test TXT no-address-here
broken.test SERVFAIL
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_postfix "$MX_IP" "mail.test other.test catchall.test implicit.test deadfirst.test" \
    "alice@mail.test,bob@mail.test,carol@mail.test,dave@mail.test,erin@mail.test,frank@other.test,grace@other.test,heidi@implicit.test,ivan@deadfirst.test,@catchall.test"

export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_GREETING_TIMEOUT=5
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_DNS_TRIES=2

# Expected verdicts: address, then "status reason". Addresses a domain
# does not know are rejected by Postfix at RCPT.
declare -A want
for u in alice bob carol dave erin; do want["$u@mail.test"]="deliverable accepted"; done
for u in zed yan xavier wanda victor uma; do want["$u@mail.test"]="undeliverable mailbox_not_found"; done
want["Alice@MAIL.Test"]="deliverable accepted"
for u in frank grace; do want["$u@other.test"]="deliverable accepted"; done
for u in nobody nemo; do want["$u@other.test"]="undeliverable mailbox_not_found"; done
for u in heidi; do want["$u@implicit.test"]="deliverable accepted"; done
for u in ghost1 ghost2; do want["$u@implicit.test"]="undeliverable mailbox_not_found"; done
for u in ivan; do want["$u@deadfirst.test"]="deliverable accepted"; done
for u in judy; do want["$u@deadfirst.test"]="undeliverable mailbox_not_found"; done
for u in anyone someone info sales; do want["$u@catchall.test"]="risky catch_all"; done
for u in a b c; do want["$u@nullmx.test"]="undeliverable null_mx"; done
for u in a b c; do want["$u@nope.test"]="undeliverable domain_not_found"; done
for u in a b; do want["$u@nomail.test"]="undeliverable no_mail_server"; done
for u in a b; do want["$u@ghost.test"]="undeliverable no_mail_server"; done
for u in a b; do want["$u@broken.test"]="unknown dns_error"; done
for u in k1 k2 k3 k4 k5 k6 k7 k8; do want["$u@mail.test"]="undeliverable mailbox_not_found"; done
bad=("no-at-sign" "two@@mail.test" "a..b@mail.test" "<alice@mail.test>"
     "alice@mail.test"$'\r\n'"DATA" "bob@mail.test"$'\n'"RCPT TO:<x@y.test>"
     "sp ace@mail.test" "alice@-bad-.test" "x@mail.test"$'\x01'"y"
     "x@mail.test"$'\x7f' "$(printf 'caf\xe9@mail.test')")
for b in "${bad[@]}"; do want["$b"]="undeliverable syntax"; done

fleet_start

# Submit: ids are e2e-<n>; the bad entries are submitted with the same
# plain XADD, byte for byte (redis-cli passes CR, LF and NUL through).
n=0
declare -A id_of
for email in "${!want[@]}"; do
    n=$((n + 1))
    id_of["$email"]=e2e-$n
    printf '%s\0' XADD mxprobe:jobs '*' email "$email" id "e2e-$n" batch e2e |
        xargs -0 redis-cli -u "$LAB_REDIS_URL" >/dev/null
done
# One job without an email field, one with an empty one, and one whose
# email contains a NUL byte (bash variables cannot, so printf writes it).
fleet_cli XADD mxprobe:jobs '*' id e2e-noemail batch e2e >/dev/null
fleet_cli XADD mxprobe:jobs '*' email "" id e2e-empty batch e2e >/dev/null
printf 'XADD mxprobe:jobs * email "x@mail.test\\x00y" id e2e-nul batch e2e\n' |
    fleet_cli >/dev/null
n=$((n + 3))
total=$n
[ "$total" -ge 50 ] || lab_fail "only $total addresses; the test needs 50"

fleet_wait_batch 90 e2e "$total" ||
    lab_fail "only $(fleet_batch_done e2e) of $total results after 90 s;" \
        "read $LAB_DIR/coordinator.log and $LAB_DIR/worker.log"
sleep 1   # a duplicate result, if any, would arrive now

# Exactly one result per job in the results stream.
dupes=$(fleet_cli --raw XRANGE mxprobe:results - + |
    awk 'prev == "id" {print} {prev = $0}' | sort | uniq -d)
fleet_check "ids with more than one result" "$dupes" ""
fleet_check "results in the stream" "$(fleet_cli XLEN mxprobe:results)" "$total"

for email in "${!want[@]}"; do
    id=${id_of[$email]}
    got=$(fleet_verdict_of "$id")
    fleet_check "$(printf '%q' "$email") ($id)" "$got" "${want[$email]}"
done
for id in e2e-noemail e2e-empty e2e-nul; do
    fleet_check "job $id" "$(fleet_verdict_of "$id")" "undeliverable syntax"
done

# The catch-all flag was decided once and published into the domain hash.
fleet_check "catchall.test flag" \
    "$(fleet_cli HGET mxprobe:domain:catchall.test catch_all)" 1
fleet_check "mail.test flag" \
    "$(fleet_cli HGET mxprobe:domain:mail.test catch_all)" 0

# One MX query per domain, however many addresses it had.
for domain in mail.test other.test catchall.test implicit.test deadfirst.test \
        nullmx.test nope.test nomail.test ghost.test; do
    fleet_check "MX queries for $domain" "$(lab_dns_count "$domain" MX)" 1
done

# Every job acknowledged; no probe item left pending.
fleet_check "pending jobs" \
    "$(fleet_cli XPENDING mxprobe:jobs coordinator | head -n 1)" 0
fleet_check "pending probes" \
    "$(fleet_cli XPENDING mxprobe:probes workers | head -n 1)" 0

# Postfix must never have seen DATA, nor a line of the injection attempts.
fleet_check "DATA seen by Postfix" \
    "$(grep -c -i 'data=' "$LAB_POSTFIX_LOG" || true)" 0
fleet_check "injected RCPT seen by Postfix" \
    "$(grep -c 'x@y.test' "$LAB_POSTFIX_LOG" || true)" 0
fleet_check "sessions seen by Postfix" \
    "$( [ "$(grep -c 'disconnect from' "$LAB_POSTFIX_LOG")" -ge 1 ] && echo yes)" yes

# Both daemons stop cleanly on SIGTERM; under ASan this also runs the leak
# check, whose report lands in their logs.
for name in coordinator worker; do
    pid=$(pgrep -f "mxprobe-$name" -P $$ | head -n 1 || true)
    [ -n "$pid" ] || { fleet_fail "mxprobe-$name is not running"; continue; }
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    fleet_check "exit status of mxprobe-$name after SIGTERM" "$rc" 0
done

fleet_check_sanitizers
fleet_end end_to_end
echo "end_to_end: $total jobs, all verdicts as expected"
