#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Temporary failures through the whole fleet (redis, unbound, coordinator,
# worker, scripted MX hosts): greylisting that passes on a later attempt
# and greylisting that never does (450, 451 and 452 with a greylist hint),
# 421 during RCPT with and without a second MX, a connection dropped
# during RCPT, an anti-harvesting server that drops after a few unknown
# recipients, slow and too slow greetings and RCPT replies, and an MX that
# refuses connections. Retries go through the delayed set, which the
# coordinator moves back to the probes stream; the schedule is 1,2 seconds.
#
# Usage: fleet_retries.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

# Custom scenarios: file name, then its lines.
fleet_scenario grey-ok \
    'rcpt nobody@* 550 5.1.1 No such user' \
    'rcpt * greylist=1500ms 250 2.1.5 Ok'
fleet_scenario grey-never \
    'rcpt g451@* 451 4.7.1 Greylisted, see https://grey.example/' \
    'rcpt g452@* 452 4.2.0 Greylisting in action, please come back later' \
    'rcpt * greylist=600s 250 2.1.5 Ok'
fleet_scenario drop-once \
    'rcpt conn=1 * drop' \
    'rcpt exists@* 250 2.1.5 Ok'
fleet_scenario greet-slow-ok \
    'greeting delay=700ms 220 mx.fake.test ESMTP slow' \
    'rcpt exists@* 250 2.1.5 Ok'
fleet_scenario greet-too-slow \
    'greeting delay=4s 220 mx.fake.test ESMTP very slow'
fleet_scenario rcpt-slow-ok \
    'rcpt exists@* delay=600ms 250 2.1.5 Ok' \
    'rcpt * delay=600ms 550 5.1.1 No such user'

cat >"$LAB_DIR/zone" <<ZONE
grey-ok.test MX 10 mx.grey-ok.test
mx.grey-ok.test A 127.0.0.21
grey-never.test MX 10 mx.grey-never.test
mx.grey-never.test A 127.0.0.22
r421.test MX 10 mx1.r421.test
r421.test MX 20 mx2.r421.test
mx1.r421.test A 127.0.0.23
mx2.r421.test A 127.0.0.24
r421all.test MX 10 mx1.r421.test
rdrop.test MX 10 mx.rdrop.test
mx.rdrop.test A 127.0.0.25
dropone.test MX 10 mx.dropone.test
mx.dropone.test A 127.0.0.32
harvest.test MX 10 mx.harvest.test
mx.harvest.test A 127.0.0.26
slowgreet.test MX 10 mx.slowgreet.test
mx.slowgreet.test A 127.0.0.27
tarpitgreet.test MX 10 mx.tarpitgreet.test
mx.tarpitgreet.test A 127.0.0.28
tarpit.test MX 10 mx.tarpit.test
mx.tarpit.test A 127.0.0.29
slowrcpt.test MX 10 mx.slowrcpt.test
mx.slowrcpt.test A 127.0.0.30
dead.test MX 10 mx.dead.test
mx.dead.test A 127.0.0.31
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.21 "$LAB_DIR/grey-ok.scn"
lab_fake_smtp 127.0.0.22 "$LAB_DIR/grey-never.scn"
lab_fake_smtp 127.0.0.23 rcpt-421
lab_fake_smtp 127.0.0.24 basic
lab_fake_smtp 127.0.0.25 rcpt-drop
lab_fake_smtp 127.0.0.32 "$LAB_DIR/drop-once.scn"
lab_fake_smtp 127.0.0.26 harvest-drop
lab_fake_smtp 127.0.0.27 "$LAB_DIR/greet-slow-ok.scn"
lab_fake_smtp 127.0.0.28 "$LAB_DIR/greet-too-slow.scn"
lab_fake_smtp 127.0.0.29 tarpit
lab_fake_smtp 127.0.0.30 "$LAB_DIR/rcpt-slow-ok.scn"

# Short waits and retries, so the whole file runs in seconds; each is
# still far above a loopback round trip.
export MXPROBE_RETRY_SCHEDULE=1,2
export MXPROBE_CONNECT_TIMEOUT=1
export MXPROBE_GREETING_TIMEOUT=1.5
export MXPROBE_EHLO_TIMEOUT=1.5
export MXPROBE_MAIL_TIMEOUT=1.5
export MXPROBE_RCPT_TIMEOUT=1.5
export MXPROBE_QUIT_TIMEOUT=1
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_MX_RATE=1000
export MXPROBE_MX_CONCURRENCY=20
fleet_start

fleet_submit g-nobody nobody@grey-ok.test
fleet_submit g-alice alice@grey-ok.test
fleet_submit gn-450 g450@grey-never.test
fleet_submit gn-451 g451@grey-never.test
fleet_submit gn-452 g452@grey-never.test
fleet_submit r421-ok exists@r421.test
fleet_submit r421all exists@r421all.test
fleet_submit rdrop exists@rdrop.test
fleet_submit dropone exists@dropone.test
fleet_submit_many hv-1=unknown1@harvest.test hv-2=unknown2@harvest.test \
    hv-3=unknown3@harvest.test hv-4=unknown4@harvest.test \
    hv-5=unknown5@harvest.test hv-6=unknown6@harvest.test \
    hv-7=unknown7@harvest.test hv-exists=exists@harvest.test
fleet_submit slowgreet exists@slowgreet.test
fleet_submit tarpitgreet exists@tarpitgreet.test
fleet_submit tarpit exists@tarpit.test
fleet_submit slowrcpt exists@slowrcpt.test
fleet_submit slowrcpt-no nobody@slowrcpt.test
fleet_submit dead exists@dead.test

# --- greylisting: the verdict already received is written at once; the
# greylisted address waits on the delayed set and passes on a retry.
fleet_wait 10 g-nobody
fleet_verdict g-nobody "undeliverable mailbox_not_found"
fleet_check "rejected address answered on the first attempt" \
    "$(fleet_field g-nobody .attempts)" 1
fleet_check "greylisted address not answered with its sibling" \
    "$(fleet_has_result g-alice && echo answered || echo waiting)" waiting
fleet_wait 20 g-alice
fleet_verdict g-alice "deliverable accepted"
fleet_check_match "greylisted address accepted on a later attempt" \
    "$(fleet_field g-alice .attempts)" '^[23]$'
fleet_check_match "greylisted address duration covers the wait" \
    "$(fleet_field g-alice .duration_ms)" '^([1-9][0-9]{3}|[0-9]{5,})$'

# --- greylisting that never ends: unknown/greylisted after the schedule.
fleet_wait 25 gn-450 gn-451 gn-452
for id in gn-450 gn-451 gn-452; do
    fleet_verdict "$id" "unknown greylisted"
    fleet_check "$id attempts (first + schedule of 2)" \
        "$(fleet_field "$id" .attempts)" 3
    fleet_check "$id deciding stage" "$(fleet_field "$id" .smtp.stage)" rcpt
done
fleet_check "452 with a greylist hint kept as evidence" \
    "$(fleet_field gn-452 .smtp.code)" 452

# --- 421 during RCPT: the next MX answers in the same session.
fleet_wait 20 r421-ok
fleet_verdict r421-ok "deliverable accepted"
fleet_check "421: answer from the second MX" \
    "$(fleet_field r421-ok .mx)" mx2.r421.test
fleet_check "421: one attempt" "$(fleet_field r421-ok .attempts)" 1

# --- 421 on the only MX, every time: retried, then the 421 decides (its
# text, "Too many connections", makes it rate_limited).
fleet_wait 25 r421all
fleet_verdict r421all "unknown rate_limited"
fleet_check "421 everywhere: attempts" "$(fleet_field r421all .attempts)" 3
fleet_check "421 everywhere: evidence" "$(fleet_field r421all .smtp.code)" 421

# --- connection dropped at RCPT without any answer: retried, never
# reported from the broken session.
fleet_wait 25 rdrop dropone
fleet_verdict rdrop "unknown temporary_failure"
fleet_check "dropped at RCPT: attempts" "$(fleet_field rdrop .attempts)" 3
fleet_check "dropped at RCPT: stage" "$(fleet_field rdrop .smtp.stage)" rcpt
fleet_verdict dropone "deliverable accepted"
fleet_check "dropped once: accepted on the retry" \
    "$(fleet_field dropone .attempts)" 2

# --- anti-harvesting: the server drops the connection at the 4th unknown
# recipient; the rest go in smaller sessions, every verdict is kept.
fleet_wait 20 hv-exists hv-1 hv-2 hv-3 hv-4 hv-5 hv-6 hv-7
fleet_verdict hv-exists "deliverable accepted"
for i in 1 2 3 4 5 6 7; do
    fleet_verdict "hv-$i" "undeliverable mailbox_not_found"
    fleet_check "hv-$i decided within one item" \
        "$(fleet_field "hv-$i" .attempts)" 1
done
HV_LOG=$(lab_fake_log 127.0.0.26)
HV_CONNS=$(lab_count "$HV_LOG" 'ev=accept')
fleet_check_match "harvest: several smaller connections" "$HV_CONNS" \
    '^([3-9]|1[0-9])$'
fleet_check "harvest: drops seen" \
    "$( [ "$(lab_count "$HV_LOG" 'ev=drop')" -ge 1 ] && echo yes)" yes
fleet_check "harvest: limit logged by the worker" \
    "$( [ "$(lab_count "$LAB_DIR/worker.log" 'ev=harvest_limit')" -ge 1 ] &&
        echo yes)" yes

# --- slow greeting within the timeout works; beyond it: timeout.
fleet_wait 15 slowgreet
fleet_verdict slowgreet "deliverable accepted"
fleet_wait 25 tarpitgreet
fleet_verdict tarpitgreet "unknown timeout"
fleet_check "greeting timeout: stage" \
    "$(fleet_field tarpitgreet .smtp.stage)" greeting
fleet_check "greeting timeout: attempts" \
    "$(fleet_field tarpitgreet .attempts)" 3

# --- RCPT replies slower than the timeout (tarpit): timeout after the
# retries; slow but in time: normal verdicts.
fleet_wait 25 tarpit slowrcpt slowrcpt-no
fleet_verdict tarpit "unknown timeout"
fleet_check "tarpit: stage" "$(fleet_field tarpit .smtp.stage)" rcpt
fleet_check "tarpit: attempts" "$(fleet_field tarpit .attempts)" 3
fleet_verdict slowrcpt "deliverable accepted"
fleet_verdict slowrcpt-no "undeliverable mailbox_not_found"

# --- nothing listens: retried, then mx_unreachable.
fleet_wait 25 dead
fleet_verdict dead "unknown mx_unreachable"
fleet_check "unreachable: attempts" "$(fleet_field dead .attempts)" 3
fleet_check "unreachable: stage" "$(fleet_field dead .smtp.stage)" connect

fleet_finish fleet_retries
