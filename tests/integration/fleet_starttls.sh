#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# STARTTLS (RFC 3207) through the whole fleet: redis-cli XADD, unbound,
# the coordinator, a worker and fake-smtp servers that refuse MAIL and RCPT
# with 530 until TLS is on. Checks that the worker upgrades and gets real
# verdicts, that it sends EHLO again under TLS, that plaintext sent behind
# the 220 is never read as a reply, and that every TLS failure ends as
# unknown, never as undeliverable.
#
# Usage: fleet_starttls.sh BUILD_DIR
set -u

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

TLS_IP=127.0.0.21     # tests/scenarios/starttls-required.scn
INJECT_IP=127.0.0.22  # same, with a forged reply behind the 220
GARBAGE_IP=127.0.0.23 # 220, then 6 KB of plaintext garbage
CLOSE_IP=127.0.0.24   # 220, then the connection closes
NOOFFER_IP=127.0.0.25 # 530 without offering STARTTLS
BIG_IP=127.0.0.26     # a 36 KB EHLO reply under TLS: several TLS records

# Scenarios that exist only for this test. Rules are tried in order, so
# the starttls rule comes before those copied from starttls-required.scn.
base=$LAB_ROOT/tests/scenarios/starttls-required.scn
{
    echo 'starttls 220 2.0.0 Ready to start TLS\n250 2.1.5 Ok'
    cat "$base"
} >"$LAB_DIR/starttls-inject.scn"
# The garbage is longer than one read of the worker (4096 octets), so part
# of it is still in the socket when the handshake starts and reaches
# OpenSSL, which must reject it.
garbage=$(printf 'HTTP/1.1 400 Bad Request\\n%.0s' $(seq 1 240))
{
    echo "starttls 220 2.0.0 Ready to start TLS\\n${garbage}x"
    cat "$base"
} >"$LAB_DIR/starttls-garbage.scn"
{
    echo 'starttls close 220 2.0.0 Ready to start TLS'
    cat "$base"
} >"$LAB_DIR/starttls-close.scn"
# Each TLS record holds up to 16 KB, more than one read of the worker, so
# this reply is read partly from OpenSSL's buffer with no socket event.
{
    echo 'ehlo tls=yes lines=90 pad=400 250 mx.fake.test'
    cat "$base"
} >"$LAB_DIR/starttls-big-reply.scn"
cat >"$LAB_DIR/starttls-not-offered.scn" <<'SCN'
ehlo 250-mx.fake.test\n250 PIPELINING
mail * 530 5.7.0 Must issue a STARTTLS command first
rcpt * 530 5.7.0 Must issue a STARTTLS command first
SCN

cat >"$LAB_DIR/zone" <<ZONE
tls.test MX 10 mx.tls.test
mx.tls.test A $TLS_IP
inject.test MX 10 mx.inject.test
mx.inject.test A $INJECT_IP
garbage.test MX 10 mx.garbage.test
mx.garbage.test A $GARBAGE_IP
close.test MX 10 mx.close.test
mx.close.test A $CLOSE_IP
nooffer.test MX 10 mx.nooffer.test
mx.nooffer.test A $NOOFFER_IP
big.test MX 10 mx.big.test
mx.big.test A $BIG_IP
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp "$TLS_IP" starttls-required
lab_fake_smtp "$INJECT_IP" "$LAB_DIR/starttls-inject.scn"
lab_fake_smtp "$GARBAGE_IP" "$LAB_DIR/starttls-garbage.scn"
lab_fake_smtp "$CLOSE_IP" "$LAB_DIR/starttls-close.scn"
lab_fake_smtp "$NOOFFER_IP" "$LAB_DIR/starttls-not-offered.scn"
lab_fake_smtp "$BIG_IP" "$LAB_DIR/starttls-big-reply.scn"

export MXPROBE_CONNECT_TIMEOUT=3
export MXPROBE_GREETING_TIMEOUT=5
fleet_env
fleet_start_coordinator "$LAB_DIR/coordinator.log"
fleet_start_worker tls-w1 "$LAB_DIR/worker.log"

declare -A want=(
    [exists@tls.test]="deliverable accepted"
    [nobody@tls.test]="undeliverable mailbox_not_found"
    [exists@inject.test]="deliverable accepted"
    [nobody@inject.test]="undeliverable mailbox_not_found"
    [exists@garbage.test]="unknown protocol_error"
    [nobody@garbage.test]="unknown protocol_error"
    [exists@close.test]="unknown protocol_error"
    [exists@nooffer.test]="unknown protocol_error"
    [exists@big.test]="deliverable accepted"
    [nobody@big.test]="undeliverable mailbox_not_found"
)

ids=()
for email in "${!want[@]}"; do
    fleet_cli XADD mxprobe:jobs '*' email "$email" id "tls-$email" \
        >/dev/null || lab_fail "XADD of $email failed"
    ids+=("tls-$email")
done
fleet_wait 60 "${ids[@]}"

for email in "${!want[@]}"; do
    fleet_check "$email" "$(fleet_verdict_of "tls-$email")" "${want[$email]}"
done
stage_and_text='.smtp.stage + " " + .smtp.text[0:20]'
fleet_check "smtp evidence of the garbage handshake" \
    "$(fleet_field tls-exists@garbage.test "$stage_and_text")" \
    "ehlo TLS handshake failed"

# Each connection of a server is served by its own process; wait for the
# close lines before reading the transcripts.
for ip in "$TLS_IP" "$INJECT_IP" "$GARBAGE_IP" "$CLOSE_IP" "$NOOFFER_IP" \
    "$BIG_IP"; do
    lab_wait_log "$(lab_fake_log "$ip")" 'ev=close' ||
        lab_fail "fake-smtp on $ip logged no close"
done
sleep 0.5

# The order of commands on the first connection to the TLS server:
# EHLO, MAIL refused, STARTTLS, the handshake, then EHLO again.
TLS_LOG=$(lab_fake_log "$TLS_IP")
sequence=$(grep 'conn=1 ' "$TLS_LOG" |
    grep -oE 'ev=recv verb=[A-Z]+|ev=tls status=[a-z]+' |
    sed 's/^ev=recv verb=//; s/^ev=tls status=/tls-/' | head -n 5 |
    tr '\n' ' ')
fleet_check "TLS server transcript" "$sequence" \
    "EHLO MAIL STARTTLS tls-ok EHLO "
# The coordinator may split a domain's jobs over several items, hence
# several connections; each must see exactly one 530 and one handshake.
TLS_CONNS=$(lab_count "$TLS_LOG" 'ev=accept')
fleet_check "530 replies sent by the TLS server" \
    "$(lab_count "$TLS_LOG" 'text="530 ')" "$TLS_CONNS"
fleet_check "handshakes on the TLS server" \
    "$(lab_count "$TLS_LOG" 'ev=tls status=ok')" "$TLS_CONNS"

INJECT_LOG=$(lab_fake_log "$INJECT_IP")
fleet_check "handshakes after the forged reply" \
    "$(lab_count "$INJECT_LOG" 'ev=tls status=ok')" \
    "$(lab_count "$INJECT_LOG" 'ev=accept')"
# The log puts the ids (domain=...) before the event name.
fleet_check "plaintext dropped by the worker" \
    "$( [ "$(lab_count "$LAB_DIR/worker.log" \
        'domain=inject.test .*ev=plaintext_dropped')" -ge 1 ] &&
        echo yes)" yes

GARBAGE_LOG=$(lab_fake_log "$GARBAGE_IP")
fleet_check "no RCPT after the garbage" \
    "$(lab_count "$GARBAGE_LOG" 'verb=RCPT')" 0
fleet_check "handshake failure logged by the worker" \
    "$( [ "$(lab_count "$LAB_DIR/worker.log" 'ev=tls_failed')" -ge 2 ] &&
        echo yes)" yes
fleet_check "no STARTTLS where it was not offered" \
    "$(lab_count "$(lab_fake_log "$NOOFFER_IP")" 'verb=STARTTLS')" 0
fleet_check "peer certificate logged" \
    "$( [ "$(lab_count "$LAB_DIR/worker.log" \
        'ev=tls_on version=TLSv1\.[23] .*subject="?/CN=lab.test')" -ge 1 ] &&
        echo yes)" yes
fleet_check "DATA seen by the fake servers" \
    "$(cat "$LAB_DIR"/fake-smtp-*.log | grep -Eci 'verb=(DATA|BDAT)')" 0

# A clean stop; under ASan this runs the leak check too.
kill -TERM "$FLEET_WORKER_PID"
rc=0
wait "$FLEET_WORKER_PID" || rc=$?
fleet_check "worker exit status after SIGTERM" "$rc" 0
fleet_check_sanitizers "$LAB_DIR/worker.log"
fleet_end fleet_starttls
echo "fleet_starttls: all checks passed"
