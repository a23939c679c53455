#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Dialogue variants through the whole fleet (redis, unbound, coordinator,
# worker, scripted MX hosts): a refused null sender (retried with the
# configured sender), a refused EHLO (HELO), RCPTs in batches only where
# PIPELINING is offered (RFC 2920), UTF-8 local parts sent only with
# SMTPUTF8 (RFC 6531), IPv6 MX addresses next to IPv4 ones, and the
# catch-all check: an ordinary-looking random mailbox, "unknown" after a
# 4xx, and a fresh check once that unknown flag has expired.
#
# Usage: fleet_dialogue.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

# Replies come 150 ms late, so pipelined RCPTs pile up in the server's
# input and show as queued=N in the transcript.
fleet_scenario pipe \
    'ehlo 250-mx.fake.test\n250-PIPELINING\n250 8BITMIME' \
    'rcpt exists@* delay=150ms 250 2.1.5 Ok' \
    'rcpt * delay=150ms 550 5.1.1 No such user'
fleet_scenario nopipe \
    'ehlo 250-mx.fake.test\n250 8BITMIME' \
    'rcpt exists@* delay=150ms 250 2.1.5 Ok' \
    'rcpt * delay=150ms 550 5.1.1 No such user'
fleet_scenario utf8-yes \
    'ehlo 250-mx.fake.test\n250-PIPELINING\n250 SMTPUTF8' \
    'rcpt jösé@* 250 2.1.5 Ok' \
    'rcpt * 550 5.1.1 No such user'
fleet_scenario catchall-4xx \
    'rcpt exists@* 250 2.1.5 Ok' \
    'rcpt * 451 4.3.0 Temporary lookup failure'

cat >"$LAB_DIR/zone" <<ZONE
nullsender.test MX 10 mx.nullsender.test
mx.nullsender.test A 127.0.0.41
ehlo.test MX 10 mx.ehlo.test
mx.ehlo.test A 127.0.0.42
pipe.test MX 10 mx.pipe.test
mx.pipe.test A 127.0.0.43
nopipe.test MX 10 mx.nopipe.test
mx.nopipe.test A 127.0.0.44
utf8yes.test MX 10 mx.utf8yes.test
mx.utf8yes.test A 127.0.0.45
utf8no.test MX 10 mx.utf8no.test
mx.utf8no.test A 127.0.0.46
v6after.test MX 10 mx.v6after.test
mx.v6after.test AAAA ::1
mx.v6after.test A 127.0.0.47
v4first.test MX 10 mx.v4first.test
mx.v4first.test AAAA ::1
mx.v4first.test A 127.0.0.48
v6only.test MX 10 mx.v6only.test
mx.v6only.test AAAA ::1
ca.test MX 10 mx.ca.test
mx.ca.test A 127.0.0.49
caunk.test MX 10 mx.caunk.test
mx.caunk.test A 127.0.0.50
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.41 null-sender-rejected
lab_fake_smtp 127.0.0.42 ehlo-rejected
lab_fake_smtp 127.0.0.43 "$LAB_DIR/pipe.scn"
lab_fake_smtp 127.0.0.44 "$LAB_DIR/nopipe.scn"
lab_fake_smtp 127.0.0.45 "$LAB_DIR/utf8-yes.scn"
lab_fake_smtp 127.0.0.46 ehlo-rejected
lab_fake_smtp ::1 basic
lab_fake_smtp 127.0.0.48 basic
lab_fake_smtp 127.0.0.49 catchall
lab_fake_smtp 127.0.0.50 "$LAB_DIR/catchall-4xx.scn"
# 127.0.0.47: nothing listens, the dead IPv4 address of mx.v6after.test.

export MXPROBE_SENDER=verify@probe.lab.test
export MXPROBE_RETRY_SCHEDULE=1,2
export MXPROBE_CONNECT_TIMEOUT=1
export MXPROBE_GREETING_TIMEOUT=2
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_MX_RATE=1000
export MXPROBE_MX_CONCURRENCY=20
fleet_start

fleet_submit ns exists@nullsender.test
fleet_submit ehlo exists@ehlo.test
fleet_submit p1 exists@pipe.test
fleet_submit_many np1=exists@nopipe.test np2=a1@nopipe.test \
    np3=a2@nopipe.test
fleet_submit u8yes 'jösé@utf8yes.test'
fleet_submit u8yes-ascii 'nobody@utf8yes.test'
fleet_submit_many u8no-ascii=exists@utf8no.test
fleet_submit u8no 'jösé@utf8no.test'
fleet_submit v6after exists@v6after.test
fleet_submit v4first exists@v4first.test
fleet_submit v6only exists@v6only.test
fleet_submit ca exists@ca.test
fleet_submit caunk1 exists@caunk.test

fleet_wait 20 ns ehlo p1 np1 np2 np3 u8yes u8yes-ascii \
    u8no-ascii u8no v6after v4first v6only ca caunk1
# pipe.test's catch-all flag is known now, so these four go out together
# in one item, without a test address in front.
fleet_submit_many p2=a1@pipe.test p3=a2@pipe.test p4=a3@pipe.test \
    p5=a4@pipe.test
fleet_wait 10 p2 p3 p4 p5

# --- null sender refused at MAIL: the configured sender, same session.
fleet_verdict ns "deliverable accepted"
NS_LOG=$(lab_fake_log 127.0.0.41)
fleet_check "null sender tried first" \
    "$(grep -m1 'verb=MAIL' "$NS_LOG" | grep -c 'MAIL FROM:<>')" 1
fleet_check "then the configured sender" \
    "$(lab_count "$NS_LOG" 'MAIL FROM:<verify@probe.lab.test>')" 1
fleet_check "one connection for both" "$(lab_count "$NS_LOG" 'ev=accept')" 1

# --- EHLO refused: HELO.
fleet_verdict ehlo "deliverable accepted"
EH_LOG=$(lab_fake_log 127.0.0.42)
fleet_check "EHLO then HELO" \
    "$(grep -Eo 'verb=(EHLO|HELO)' "$EH_LOG" | head -n 2 | tr '\n' ' ')" \
    "verb=EHLO verb=HELO "

# --- PIPELINING: RCPTs in batches; without it, one at a time.
fleet_verdict p1 "deliverable accepted"
for id in p2 p3 p4 p5; do
    fleet_verdict "$id" "undeliverable mailbox_not_found"
done
fleet_verdict np1 "deliverable accepted"
fleet_verdict np2 "undeliverable mailbox_not_found"
P_LOG=$(lab_fake_log 127.0.0.43)
NP_LOG=$(lab_fake_log 127.0.0.44)
P_MAX=$(grep 'verb=RCPT' "$P_LOG" | grep -Eo 'queued=[0-9]+' | cut -d= -f2 |
    sort -n | tail -n 1)
fleet_check_match "pipelined RCPTs queued behind each other" "$P_MAX" \
    '^[2-9]$'
fleet_check "not pipelined: never more than one command in flight" \
    "$(grep 'verb=RCPT' "$NP_LOG" | grep -vc 'queued=0' || true)" 0

# --- UTF-8 local part: sent with SMTPUTF8 where offered, else not sent.
fleet_verdict u8yes "deliverable accepted"
fleet_verdict u8yes-ascii "undeliverable mailbox_not_found"
U8_LOG=$(lab_fake_log 127.0.0.45)
fleet_check "MAIL carries SMTPUTF8" \
    "$(lab_count "$U8_LOG" 'MAIL FROM:<> SMTPUTF8')" 1
# The transcript escapes octets above 0x7f: ö is \xc3\xb6.
fleet_check "UTF-8 address sent" \
    "$(grep -Fc 'RCPT TO:<j\xc3\xb6s\xc3\xa9@' "$U8_LOG")" 1
fleet_verdict u8no "unknown protocol_error"
fleet_check "UTF-8 without SMTPUTF8: reason text" \
    "$(fleet_field u8no .smtp.text)" \
    "not sent: the local part is UTF-8 and the server does not offer SMTPUTF8"
fleet_check "UTF-8 without SMTPUTF8: never sent" \
    "$(grep -Fc 'j\xc3\xb6s' "$(lab_fake_log 127.0.0.46)" || true)" 0
fleet_verdict u8no-ascii "deliverable accepted"

# --- IPv6: the host's IPv4 address first, then its IPv6 address.
fleet_verdict v6after "deliverable accepted"
fleet_check "dead IPv4, then IPv6" "$(fleet_field v6after .mx_ip)" ::1
fleet_verdict v4first "deliverable accepted"
fleet_check "live IPv4 first" "$(fleet_field v4first .mx_ip)" 127.0.0.48
fleet_verdict v6only "deliverable accepted"
fleet_check "IPv6 only" "$(fleet_field v6only .mx_ip)" ::1
fleet_check "IPv6 server saw v6after and v6only, not v4first" \
    "$(grep -c 'ev=recv verb=RCPT line="RCPT TO:<exists@' \
        "$(lab_fake_log ::1)")" 2

# --- catch-all: an ordinary-looking random mailbox, tested first.
fleet_verdict ca "risky catch_all"
fleet_check "catch-all flag in the result" "$(fleet_field ca .catch_all)" true
CA_LOCAL=$(grep -m1 'verb=RCPT' "$(lab_fake_log 127.0.0.49)" |
    sed -E 's/.*RCPT TO:<([^@]*)@.*/\1/')
fleet_check_match "random local part reads like a mailbox name" \
    "$CA_LOCAL" '^[a-z]{4,}\.[a-z]{4,}[0-9]{2}$'
fleet_check "catch-all decision stored" \
    "$(fleet_cli HGET mxprobe:domain:ca.test catch_all)" 1

# --- catch-all check answered 4xx: unknown, not "no"; checked again once
# the unknown flag expired (the first retry delay, 1 s here).
fleet_verdict caunk1 "deliverable accepted"
fleet_check "4xx on the random address: flag unknown" \
    "$(fleet_field caunk1 .catch_all)" null
fleet_check "4xx on the random address: hash says unknown" \
    "$(fleet_cli HGET mxprobe:domain:caunk.test catch_all)" unknown
sleep 1.5
fleet_submit caunk2 exists@caunk.test
fleet_wait 15 caunk2
fleet_verdict caunk2 "deliverable accepted"
CAU_LOG=$(lab_fake_log 127.0.0.50)
fleet_check "a fresh catch-all check with a new random address" \
    "$(grep 'verb=RCPT' "$CAU_LOG" | grep -v 'exists@' |
        sed -E 's/.*RCPT TO:<([^>]*)>.*/\1/' | sort -u | wc -l)" 2

fleet_finish fleet_dialogue
