#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Hostile and broken MX hosts through the whole fleet (redis, unbound,
# coordinator, worker, scripted servers): text that is not SMTP, a reply
# line over 512 octets, replies of hundreds of lines, non-ASCII and NUL
# octets in reply text, and a server that closes without a greeting. Each
# must end in protocol_error or the right retry, with the worker alive,
# its memory bounded and no sanitizer report; a polite server next to
# them keeps working.
#
# Usage: fleet_hostile.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

cat >"$LAB_DIR/zone" <<ZONE
garbage.test MX 10 mx.garbage.test
mx.garbage.test A 127.0.0.61
longline.test MX 10 mx.longline.test
mx.longline.test A 127.0.0.62
manylines.test MX 10 mx.manylines.test
mx.manylines.test A 127.0.0.63
utf8text.test MX 10 mx.utf8text.test
mx.utf8text.test A 127.0.0.64
greetdrop.test MX 10 mx.greetdrop.test
mx.greetdrop.test A 127.0.0.65
polite.test MX 10 mx.polite.test
mx.polite.test A 127.0.0.66
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.61 garbage
lab_fake_smtp 127.0.0.62 long-line
lab_fake_smtp 127.0.0.63 many-lines
lab_fake_smtp 127.0.0.64 utf8-text
lab_fake_smtp 127.0.0.65 greeting-drop
lab_fake_smtp 127.0.0.66 basic

export MXPROBE_RETRY_SCHEDULE=1,2
export MXPROBE_CONNECT_TIMEOUT=1
export MXPROBE_GREETING_TIMEOUT=2
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_MX_RATE=1000
export MXPROBE_MX_CONCURRENCY=20
fleet_start

fleet_submit garbage exists@garbage.test
fleet_submit longline nobody@longline.test
fleet_submit manylines nobody@manylines.test
fleet_submit_many u8-ok=exists@utf8text.test u8-no=nobody@utf8text.test
fleet_submit greetdrop exists@greetdrop.test
fleet_submit polite exists@polite.test

fleet_wait 25 garbage longline manylines u8-ok u8-no greetdrop polite

fleet_verdict garbage "unknown protocol_error"
fleet_check "garbage: one attempt, no retry" \
    "$(fleet_field garbage .attempts)" 1
fleet_verdict longline "unknown protocol_error"
fleet_check "long line: stage" "$(fleet_field longline .smtp.stage)" rcpt
fleet_verdict manylines "unknown protocol_error"
fleet_check "500-line EHLO reply: stage" \
    "$(fleet_field manylines .smtp.stage)" ehlo

fleet_verdict u8-ok "deliverable accepted"
fleet_check "UTF-8 reply text kept" "$(fleet_field u8-ok .smtp.text)" \
    "Empfänger ok"
fleet_verdict u8-no "undeliverable mailbox_not_found"
fleet_check "0xFF and NUL replaced in the kept text" \
    "$(fleet_field u8-no .smtp.text)" "Benutzer unbekannt ?? ende"

fleet_verdict greetdrop "unknown mx_unreachable"
fleet_check "closed before the greeting: retried" \
    "$(fleet_field greetdrop .attempts)" 3
fleet_check "closed before the greeting: stage" \
    "$(fleet_field greetdrop .smtp.stage)" greeting

fleet_verdict polite "deliverable accepted"

# Bounded memory: the worker's resident size after all this.
RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$FLEET_WORKER_PID/status")
fleet_check "worker resident memory under 128 MB" \
    "$( [ "${RSS_KB:-999999}" -lt 131072 ] && echo yes)" yes

fleet_finish fleet_hostile
