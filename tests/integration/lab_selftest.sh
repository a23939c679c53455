#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Self-test of the test lab (scripts/lab/lab.sh): starts each lab server
# and checks it with real clients: redis-cli, dig against unbound, swaks
# against Postfix, and lab_smtp_talk, swaks and openssl s_client against
# fake-smtp scenarios. Usage: lab_selftest.sh BUILD_DIR (fake-smtp is
# BUILD_DIR/tests/fake_smtp/fake-smtp). Runs as root.

set -uo pipefail

# shellcheck source=../../scripts/lab/lab.sh
source "$(dirname "$0")/../../scripts/lab/lab.sh"
# shellcheck source=expect_lib.bash
source "$(dirname "$0")/expect_lib.bash"

dig_lab()
{
    dig +tries=1 +time=2 -p "$LAB_DNS_PORT" @127.0.0.1 "$@"
}

dig_status()
{
    dig_lab "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'
}

swaks_rcpt()
{
    local ip=$1 to=$2
    shift 2
    swaks --server "$ip" --port "$LAB_SMTP_PORT" --from '<>' --to "$to" \
        --quit-after RCPT --timeout 5 "$@" 2>&1
}

check_redis()
{
    lab_redis
    expect_eq "redis PING" \
        "$(redis-cli -p "$LAB_REDIS_PORT" ping)" PONG
    redis-cli -p "$LAB_REDIS_PORT" set lab:key 42 >/dev/null
    expect_eq "redis GET after SET" \
        "$(redis-cli -p "$LAB_REDIS_PORT" get lab:key)" 42
    expect_eq "redis appendonly" \
        "$(redis-cli -p "$LAB_REDIS_PORT" config get appendonly | tail -n1)" \
        yes
    expect_match "redis URL" "$LAB_REDIS_URL" \
        "^redis://127\.0\.0\.1:$LAB_REDIS_PORT\$"
}

check_dns()
{
    local zone=$LAB_DIR/zone.txt
    cat >"$zone" <<'EOF'
# lab self-test zone
example.test        MX 10 mx1.example.test.
example.test        MX 20 mx2.example.test
mx1.example.test    A 127.0.0.2
mx2.example.test    300 A 127.0.0.3
mx1.example.test    AAAA ::1
nullmx.test         MX 0 .
gone.test           NXDOMAIN
broken.test         SERVFAIL
refused.test        REFUSED
silent.test         TIMEOUT
EOF
    lab_dns "$zone"

    expect_eq "MX of example.test" \
        "$(dig_lab +short example.test MX | sort | tr '\n' ' ')" \
        "10 mx1.example.test. 20 mx2.example.test. "
    expect_eq "A of mx1" "$(dig_lab +short mx1.example.test A)" 127.0.0.2
    expect_eq "A of mx2" "$(dig_lab +short mx2.example.test A)" 127.0.0.3
    expect_eq "AAAA of mx1" "$(dig_lab +short mx1.example.test AAAA)" ::1
    expect_eq "null MX" "$(dig_lab +short nullmx.test MX)" "0 ."
    expect_eq "NXDOMAIN name" "$(dig_status gone.test MX)" NXDOMAIN
    expect_eq "NXDOMAIN below name" "$(dig_status a.gone.test A)" NXDOMAIN
    expect_eq "undefined name" "$(dig_status nowhere.test MX)" NXDOMAIN
    expect_eq "outside name stays local" "$(dig_status example.com A)" \
        NXDOMAIN
    expect_eq "SERVFAIL name" "$(dig_status broken.test MX)" SERVFAIL
    expect_eq "REFUSED name" "$(dig_status refused.test MX)" REFUSED
    expect_match "TIMEOUT name" "$(dig_lab +time=1 silent.test MX)" \
        "timed out|no servers could be reached"
    expect_eq "NODATA" "$(dig_status nullmx.test A)" NOERROR

    dig_lab +short example.test MX >/dev/null
    expect_eq "query count example.test MX" \
        "$(lab_dns_count example.test MX)" 2
    expect_eq "query count with dot" \
        "$(lab_dns_count example.test. mx)" 2
    expect_eq "query count other type" \
        "$(lab_dns_count mx1.example.test AAAA)" 1
    expect_eq "query count never asked" \
        "$(lab_dns_count never.test MX)" 0
}

check_postfix()
{
    local out log
    lab_postfix 127.0.0.2 "a.test b.test" "alice@a.test,bob@b.test"
    lab_postfix 127.0.0.3 "c.test" "carol@c.test"
    log=$(lab_postfix_log 127.0.0.2)

    out=$(swaks_rcpt 127.0.0.2 alice@a.test)
    expect_match "postfix greeting" "$out" "^<-  220 mx-127.0.0.2.lab.test "
    expect_match "postfix null sender" "$out" "^<-  250 2.1.0 Ok"
    expect_match "postfix known mailbox" "$out" "^<-  250 2.1.5 Ok"
    out=$(swaks_rcpt 127.0.0.2 nobody@a.test)
    expect_match "postfix unknown mailbox" "$out" \
        "^<\*\* 550 5\.1\.1 <nobody@a\.test>: Recipient address rejected"
    out=$(swaks_rcpt 127.0.0.2 carol@c.test)
    expect_match "postfix other domain" "$out" "^<\*\* 554 5\.7\.1 .*Relay"
    out=$(swaks_rcpt 127.0.0.3 carol@c.test)
    expect_match "second postfix known" "$out" "^<-  250 2.1.5 Ok"
    expect_eq "second postfix log" "$(lab_postfix_log 127.0.0.3)" \
        "$LAB_POSTFIX_LOG"

    lab_wait_log "$log" "disconnect from .* commands=3/4" 5 ||
        fail "postfix log has no disconnect line for the rejected RCPT"
    expect_eq "postfix connections logged" \
        "$(lab_count "$log" 'postfix/smtpd\[[0-9]+\]: connect from')" 3
    expect_eq "postfix saw no DATA" "$(lab_count "$log" ' data=')" 0
}

check_smtp_sink()
{
    local out
    lab_smtp_sink 127.0.0.4
    out=$(swaks --server 127.0.0.4 --port "$LAB_SMTP_PORT" --to x@sink.test \
        --timeout 5 2>&1)
    expect_match "smtp-sink accepts a message" "$out" "^<-  250 "
    expect_match "smtp-sink QUIT" "$out" "^<-  221 "
}

check_fake_basic()
{
    local out log
    lab_fake_smtp 127.0.0.5 basic
    log=$LAB_FAKE_LOG
    out=$(swaks_rcpt 127.0.0.5 exists@x.test)
    expect_match "fake basic EHLO" "$out" "^<-  250-SMTPUTF8"
    expect_match "fake basic known" "$out" "^<-  250 2.1.5 Ok"
    out=$(swaks_rcpt 127.0.0.5 nobody@x.test)
    expect_match "fake basic unknown" "$out" "^<\*\* 550 5\.1\.1 "
    out=$(lab_smtp_talk 127.0.0.5 "EHLO lab" "NOOP" "FOO bar" "QUIT")
    expect_match "fake NOOP" "$out" "^250 2\.0\.0 Ok$"
    expect_match "fake unknown command" "$out" "^500 5\.5\.2 "
    expect_match "fake QUIT" "$out" "^221 "
    lab_wait_log "$log" "conn=3 ev=close" 5 || fail "fake conn 3 not closed"
    expect_eq "fake transcript RCPT count" \
        "$(lab_count "$log" 'ev=recv verb=RCPT')" 2
    expect_eq "fake transcript connections" \
        "$(lab_count "$log" 'ev=accept')" 3
    expect_eq "fake transcript no DATA" \
        "$(lab_count "$log" 'ev=recv verb=DATA')" 0
}

# Starts a scenario on its own address and stores the replies to the
# commands in OUT. It must not run inside $(...), which would lose track of
# the server process.
talk_scenario()
{
    local ip=$1 scenario=$2
    shift 2
    lab_fake_smtp "$ip" "$scenario"
    OUT=$(lab_smtp_talk "$ip" "$@")
}

check_fake_greetings()
{
    local out start
    talk_scenario 127.0.0.6 greeting-421 "EHLO lab"
    out=$OUT
    expect_eq "greeting 421" "$out" \
        "421 4.3.2 mx.fake.test Service not available, closing channel"
    talk_scenario 127.0.0.7 greeting-drop "EHLO lab"
    out=$OUT
    expect_eq "greeting drop" "$out" ""
    start=$SECONDS
    talk_scenario 127.0.0.8 greeting-slow "QUIT"
    out=$OUT
    expect_match "slow greeting arrives" "$out" "^220 mx.fake.test ESMTP slow"
    if [ $((SECONDS - start)) -lt 2 ]; then
        fail "slow greeting came after $((SECONDS - start))s, expected 3s"
    else
        pass
    fi
    talk_scenario 127.0.0.9 garbage "EHLO lab"
    out=$OUT
    expect_eq "garbage replies" "$out" \
        "$(printf 'HTTP/1.1 400 Bad Request\n<html>nope</html>')"
}

check_fake_commands()
{
    local out
    talk_scenario 127.0.0.10 ehlo-rejected "EHLO lab" "HELO lab"
    out=$OUT
    expect_match "EHLO rejected" "$out" "^502 5\.5\.2"
    expect_match "HELO accepted" "$out" "^250 mx\.fake\.test$"

    talk_scenario 127.0.0.11 null-sender-rejected "HELO lab" \
        "MAIL FROM:<>" "MAIL FROM:<probe@lab.test>"
    out=$OUT
    expect_match "null sender rejected" "$out" "^550 5\.7\.1 <>"
    expect_match "real sender accepted" "$out" "^250 2\.1\.0 Ok$"

    talk_scenario 127.0.0.12 catchall "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<anything@x.test>" "RCPT TO:<else@y.test>"
    out=$OUT
    expect_eq "catch-all accepts all" \
        "$(grep -c '^250 2.1.5 Ok$' <<<"$out")" 2

    talk_scenario 127.0.0.13 rcpt-421 "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<a@x.test>" "RSET"
    out=$OUT
    expect_eq "421 at RCPT closes" "$(tail -n1 <<<"$out")" \
        "421 4.7.0 mx.fake.test Too many connections, closing"

    talk_scenario 127.0.0.14 rcpt-drop "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<a@x.test>" "QUIT"
    out=$OUT
    expect_eq "drop at RCPT" "$(tail -n1 <<<"$out")" "250 2.1.0 Ok"
}

check_fake_harvest()
{
    local out log
    talk_scenario 127.0.0.15 harvest-drop "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<exists@x.test>" "RCPT TO:<u1@x.test>" \
        "RCPT TO:<u2@x.test>" "RCPT TO:<u3@x.test>" \
        "RCPT TO:<u4@x.test>" "RCPT TO:<u5@x.test>"
    out=$OUT
    expect_eq "harvest: 550 count before drop" \
        "$(grep -c '^550 ' <<<"$out")" 3
    log=$(lab_fake_log 127.0.0.15)
    lab_wait_log "$log" "ev=close" 5 || fail "harvest session did not close"
    expect_match "harvest: dropped" "$(cat "$log")" "ev=close reason=drop"
    expect_eq "harvest: RCPTs seen" \
        "$(lab_count "$log" 'verb=RCPT')" 5
}

check_fake_greylist()
{
    local out
    lab_fake_smtp 127.0.0.16 greylist
    out=$(lab_smtp_talk 127.0.0.16 "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<g@x.test>")
    expect_match "greylist first try" "$out" \
        "^450 4\.7\.1 <g@x\.test>: .*Greylisted"
    out=$(lab_smtp_talk 127.0.0.16 "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<G@x.test>")
    expect_match "greylist early retry, new connection" "$out" "^450 4\.7\.1"
    sleep 2.2
    out=$(lab_smtp_talk 127.0.0.16 "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<g@x.test>" "RCPT TO:<other@x.test>")
    expect_match "greylist passed after wait" "$out" "^250 2\.1\.5 Ok$"
    expect_match "greylist is per address" "$out" "^450 4\.7\.1 <other@"
}

check_fake_big_replies()
{
    local out line
    talk_scenario 127.0.0.17 long-line "HELO lab" \
        "RCPT TO:<a@x.test>"
    out=$OUT
    line=$(tail -n1 <<<"$out")
    expect_eq "long reply line length" "${#line}" 1000
    expect_match "long reply line text" "$line" "^550 5\.1\.1 No such userx+$"

    talk_scenario 127.0.0.18 many-lines "EHLO lab" \
        "RCPT TO:<a@x.test>"
    out=$OUT
    expect_eq "500-line EHLO" "$(grep -c '^250[- ]mx' <<<"$out")" 500
    expect_eq "300-line RCPT" "$(grep -c '^550[- ]5' <<<"$out")" 300
    expect_eq "last line has a space" "$(tail -n1 <<<"$out")" \
        "550 5.1.1 No such user"

    talk_scenario 127.0.0.19 utf8-text "HELO lab" "RCPT TO:<a@x.test>"
    out=$OUT
    expect_match "UTF-8 greeting" "$out" "grüße"
    if LC_ALL=C grep -q $'\xff' <<<"$out"; then
        pass
    else
        fail "raw 0xff octet missing from the utf8-text reply"
    fi
}

check_fake_tls()
{
    local out log
    lab_fake_smtp 127.0.0.20 starttls-required
    out=$(lab_smtp_talk 127.0.0.20 "EHLO lab" "MAIL FROM:<>")
    expect_match "STARTTLS advertised" "$out" "^250 STARTTLS$"
    expect_match "530 before TLS" "$out" "^530 5\.7\.0 Must issue a STARTTLS"
    out=$( (printf 'EHLO lab\r\n'
        sleep 0.3
        printf 'MAIL FROM:<>\r\nRCPT TO:<exists@x.test>\r\nQUIT\r\n'
        sleep 0.5) | timeout 10 openssl s_client -quiet -starttls smtp \
        -connect "127.0.0.20:$LAB_SMTP_PORT" 2>/dev/null | tr -d '\r')
    expect_match "MAIL accepted over TLS" "$out" "^250 2\.1\.0 Ok$"
    expect_match "RCPT accepted over TLS" "$out" "^250 2\.1\.5 Ok$"
    log=$(lab_fake_log 127.0.0.20)
    lab_wait_log "$log" "conn=2 ev=close" 5 || fail "TLS session not closed"
    expect_match "TLS handshake logged" "$(cat "$log")" \
        "conn=2 ev=tls status=ok"
}

check_fake_ipv6_and_conn()
{
    local out
    if ! ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
        echo "NOTE: ::1 not configured on lo; IPv6 check skipped" >&2
        return 0
    fi
    talk_scenario ::1 first-conn-drop "HELO lab"
    out=$OUT
    expect_eq "conn=1 rule drops the first connection" "$out" ""
    out=$(lab_smtp_talk ::1 "HELO lab" "MAIL FROM:<>" \
        "RCPT TO:<exists@x.test>")
    expect_match "IPv6 second connection works" "$out" "^250 2\.1\.5 Ok$"
}

check_fake_robustness()
{
    local out long
    lab_fake_smtp 127.0.0.21 basic
    long=$(head -c 6000 /dev/zero | tr '\0' 'A')
    out=$(lab_smtp_talk 127.0.0.21 "$long" "NOOP")
    expect_match "overlong command line" "$out" "^500 5\.5\.0 Line too long"
    expect_match "session goes on after it" "$out" "^250 2\.0\.0 Ok$"
    head -c 100000 /dev/urandom >"$LAB_DIR/noise"
    timeout 5 bash -c \
        "cat '$LAB_DIR/noise' >/dev/tcp/127.0.0.21/$LAB_SMTP_PORT" 2>/dev/null
    out=$(lab_smtp_talk 127.0.0.21 "HELO lab" "QUIT")
    expect_match "server alive after random bytes" "$out" "^221 "
}

check_bad_scenario()
{
    local bad=$LAB_DIR/bad.scn out
    printf 'rcpt * bogus=1 250 ok\n' >"$bad"
    out=$("$LAB_BUILD_DIR/tests/fake_smtp/fake-smtp" -n -s "$bad" 2>&1)
    expect_eq "invalid scenario exit code" "$?" 2
    expect_match "invalid scenario message" "$out" "bad\.scn:1: "
    printf 'rcpt * 250 ok\nrcpt\n' >"$bad"
    out=$("$LAB_BUILD_DIR/tests/fake_smtp/fake-smtp" -n -s "$bad" 2>&1)
    expect_match "missing pattern" "$out" "bad\.scn:2: RCPT needs"
    for scn in "$LAB_ROOT"/tests/scenarios/*.scn; do
        if "$LAB_BUILD_DIR/tests/fake_smtp/fake-smtp" -n -s "$scn" \
            >/dev/null 2>&1; then
            pass
        else
            fail "shipped scenario $scn does not parse"
        fi
    done
}

lab_init "${1:-}"
check_redis
check_dns
check_postfix
check_smtp_sink
check_fake_basic
check_fake_greetings
check_fake_commands
check_fake_harvest
check_fake_greylist
check_fake_big_replies
check_fake_tls
check_fake_ipv6_and_conn
check_fake_robustness
check_bad_scenario

echo "lab_selftest: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
