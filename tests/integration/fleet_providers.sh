#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Provider dialogues through the whole fleet (redis, unbound, coordinator,
# worker, scripted MX hosts): each fake MX sends the greeting, EHLO and RCPT
# replies that Gmail, Exchange Online, Yahoo, iCloud, GMX and a cPanel Exim
# server are documented to send (tests/scenarios/provider-*.scn). Jobs go
# in with plain redis-cli XADD; each verdict is read back with
# "mxprobe result ID" and checked with jq, including the deciding reply.
#
# Usage: fleet_providers.sh BUILD_DIR
set -euo pipefail

source "$(dirname "$0")/../../scripts/lab/lab.sh"
lab_init "${1:-build}"
source "$LAB_ROOT/tests/integration/fleet_lib.bash"

cat >"$LAB_DIR/zone" <<ZONE
gmail.test MX 5 gmail-smtp-in.l.gmail.test
gmail-smtp-in.l.gmail.test A 127.0.0.61
outlook.test MX 0 outlook-test.mail.protection.outlook.test
outlook-test.mail.protection.outlook.test A 127.0.0.62
yahoo.test MX 1 mta5.am0.yahoodns.test
mta5.am0.yahoodns.test A 127.0.0.63
ymail.test MX 1 mta6.am0.yahoodns.test
mta6.am0.yahoodns.test A 127.0.0.64
icloud.test MX 10 mx01.mail.icloud.test
mx01.mail.icloud.test A 127.0.0.65
gmx.test MX 10 mx00.gmx.test
mx00.gmx.test A 127.0.0.66
cpanel.test MX 0 mail.cpanel.test
mail.cpanel.test A 127.0.0.67
ZONE

lab_redis
lab_dns "$LAB_DIR/zone"
lab_fake_smtp 127.0.0.61 provider-gmail
lab_fake_smtp 127.0.0.62 provider-outlook
lab_fake_smtp 127.0.0.63 provider-yahoo
lab_fake_smtp 127.0.0.64 provider-yahoo-tss04
lab_fake_smtp 127.0.0.65 provider-icloud
lab_fake_smtp 127.0.0.66 provider-gmx-blocked
lab_fake_smtp 127.0.0.67 provider-cpanel

# Temporary answers (Gmail's 452 over quota, Yahoo's 421) are retried
# after 1 and 2 seconds, so the whole test stays well under 20 seconds.
export MXPROBE_RETRY_SCHEDULE=1,2
export MXPROBE_CONNECT_TIMEOUT=2
export MXPROBE_GREETING_TIMEOUT=3
export MXPROBE_DNS_TIMEOUT=0.5
export MXPROBE_MX_RATE=1000
export MXPROBE_MX_CONCURRENCY=20
fleet_start

JOBS=(
    gm-exists=exists@gmail.test gm-nobody=nobody@gmail.test
    gm-full=full@gmail.test gm-disabled=disabled@gmail.test
    ol-exists=exists@outlook.test ol-nobody=nobody@outlook.test
    ya-exists=exists@yahoo.test ya-nobody=nobody@yahoo.test
    ya-disabled=disabled@yahoo.test ym-exists=exists@ymail.test
    ic-exists=exists@icloud.test ic-nobody=nobody@icloud.test
    ic-full=full@icloud.test ic-disabled=disabled@icloud.test
    gx-exists=exists@gmx.test gx-nobody=nobody@gmx.test
    cp-exists=exists@cpanel.test cp-nobody=nobody@cpanel.test
)
for pair in "${JOBS[@]}"; do
    fleet_submit "${pair%%=*}" "${pair#*=}"
done
fleet_wait 20 "${JOBS[@]%%=*}"

# check_smtp ID STAGE CODE ENHANCED: the reply that decided the verdict.
check_smtp()
{
    fleet_check "$1 deciding reply" \
        "$(fleet_field "$1" '[.smtp.stage, .smtp.code, .smtp.enhanced] |
            map(tostring) | join(" ")')" "$2 $3 $4"
}

# --- Gmail: multi-line 550-5.1.1, 452-4.2.2 over quota, 550-5.2.1.
fleet_verdict gm-exists "deliverable accepted"
fleet_verdict gm-nobody "undeliverable mailbox_not_found"
check_smtp gm-nobody rcpt 550 5.1.1
fleet_check_match "gm-nobody text joins the four lines" \
    "$(fleet_field gm-nobody .smtp.text)" '^The email account .* gsmtp$'
fleet_verdict gm-full "risky mailbox_full"
check_smtp gm-full rcpt 452 4.2.2
fleet_verdict gm-disabled "undeliverable mailbox_disabled"
check_smtp gm-disabled rcpt 550 5.2.1
fleet_check "gmail catch-all flag" "$(fleet_field gm-exists .catch_all)" false

# --- Exchange Online: 5.4.1 "Access denied" means no such recipient.
fleet_verdict ol-exists "deliverable accepted"
fleet_verdict ol-nobody "undeliverable mailbox_not_found"
check_smtp ol-nobody rcpt 550 5.4.1
fleet_check "outlook MX in the result" "$(fleet_field ol-nobody .mx)" \
    outlook-test.mail.protection.outlook.test

# --- Yahoo: 554 without an enhanced code, and [TSS04] at MAIL FROM.
fleet_verdict ya-exists "deliverable accepted"
fleet_verdict ya-nobody "undeliverable mailbox_not_found"
check_smtp ya-nobody rcpt 554 null
fleet_verdict ya-disabled "undeliverable mailbox_disabled"
fleet_verdict ym-exists "unknown rate_limited"
check_smtp ym-exists mail 421 4.7.0
fleet_check_match "rate limit retried" "$(fleet_field ym-exists .attempts)" \
    '^[2-9]$'

# --- iCloud: 552 5.2.2 over quota, 5.1.1 for a deactivated address.
fleet_verdict ic-exists "deliverable accepted"
fleet_verdict ic-nobody "undeliverable mailbox_not_found"
fleet_verdict ic-full "risky mailbox_full"
check_smtp ic-full rcpt 552 5.2.2
fleet_verdict ic-disabled "undeliverable mailbox_disabled"
check_smtp ic-disabled rcpt 550 5.1.1

# --- GMX: a 554 greeting says nothing about either mailbox.
fleet_verdict gx-exists "unknown blocked"
fleet_verdict gx-nobody "unknown blocked"
check_smtp gx-nobody greeting 554 null
fleet_check "gmx: no RCPT was sent" \
    "$(lab_count "$(lab_fake_log 127.0.0.66)" 'verb=RCPT')" 0

# --- cPanel Exim: three-line banner, "550 No Such User Here".
fleet_verdict cp-exists "deliverable accepted"
fleet_verdict cp-nobody "undeliverable mailbox_not_found"
check_smtp cp-nobody rcpt 550 null

fleet_check "batch counter: every job done" \
    "$(fleet_cli HGET mxprobe:batch:fleet done)" "${#JOBS[@]}"

fleet_finish fleet_providers
