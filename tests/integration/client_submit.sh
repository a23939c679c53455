#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests the mxprobe client against a real redis-server on loopback. Submit
# must write the batch hash and the jobs stream as documented. The fleet's
# part is played by tests/tools/put_result, which pushes result maps to the
# reply list, and submit must print them in input order as CSV or JSON
# lines. Also covers the exit
# code on timeout and on interrupt, mxprobe result, and the error messages
# for a bad Redis address and bad options.
#
# Usage: bash tests/integration/client_submit.sh BUILD_DIR
set -euo pipefail

BUILD=${1:?usage: client_submit.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
MXPROBE=$BUILD/client/mxprobe
PUT=$BUILD/tests/tools/put_result
for bin in "$MXPROBE" "$PUT"; do
    [[ -x $bin ]] || { echo "FAIL: $bin is missing; build first" >&2; exit 1; }
done

TMP=$(mktemp -d)
REDIS_PID=
cleanup() {
    if [[ -n $REDIS_PID ]]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Starts redis-server on a free loopback port in $TMP.
start_redis() {
    local try
    for try in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$((20000 + RANDOM % 40000))
        redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP" \
            --save '' --appendonly no --logfile "$TMP/redis.log" &
        REDIS_PID=$!
        for _ in $(seq 50); do
            if redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; then
                return 0
            fi
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    done
    fail "redis-server did not start; see $TMP/redis.log"
}

rcli() {
    redis-cli -p "$PORT" "$@"
}

# put LIST_OR_KEY rpush|set field=value...
put() {
    local cmd=$1 key=$2
    shift 2
    "$PUT" 127.0.0.1 "$PORT" "$cmd" "$key" "$@"
}

expect_eq() {
    local what=$1 got=$2 want=$3
    [[ $got == "$want" ]] || fail "$what: got [$got], want [$want]"
}

start_redis
export MXPROBE_REDIS=redis://127.0.0.1:$PORT
export MXPROBE_PREFIX=t:

# Line 1 is a comment, line 3 is blank and line 8 is only spaces, so five
# addresses remain. Line 4 ends in CRLF, and line 6 keeps its spaces.
printf '%s\n' '# header comment' 'alice@example.test' '' \
    $'bob@example.test\r' '"odd, name"@example.test' \
    '  spaced@example.test ' 'not-an-address' '   ' > "$TMP/in.txt"

### submit --no-wait: batch hash and jobs stream
out=$("$MXPROBE" submit --no-wait --batch nw1 "$TMP/in.txt")
expect_eq "no-wait output" "$out" "nw1"
expect_eq "jobs stream length" "$(rcli XLEN t:jobs)" 5
expect_eq "batch total" "$(rcli HGET t:batch:nw1 total)" 5
ttl=$(rcli TTL t:batch:nw1)
(( ttl > 0 )) || fail "batch hash has no TTL (TTL $ttl)"

# Each entry: email, id, batch, reply, in input order.
rcli --raw XRANGE t:jobs - + > "$TMP/xrange.txt"
fields=$(grep -v -E '^[0-9]+-[0-9]+$' "$TMP/xrange.txt")
want_fields=$(cat <<'EOF'
email
alice@example.test
id
nw1:2
batch
nw1
reply
t:reply:nw1
email
bob@example.test
id
nw1:4
batch
nw1
reply
t:reply:nw1
email
"odd, name"@example.test
id
nw1:5
batch
nw1
reply
t:reply:nw1
email
  spaced@example.test 
id
nw1:6
batch
nw1
reply
t:reply:nw1
email
not-an-address
id
nw1:7
batch
nw1
reply
t:reply:nw1
EOF
)
expect_eq "jobs stream fields" "$fields" "$want_fields"
if grep -q $'\r' "$TMP/xrange.txt"; then
    fail "a CR of the input reached the jobs stream"
fi

# The same batch name again is refused, and nothing more is added.
set +e
"$MXPROBE" submit --no-wait --batch nw1 "$TMP/in.txt" 2> "$TMP/err.txt"
rc=$?
set -e
expect_eq "reused batch exit code" "$rc" 1
grep -q 'batch nw1 already exists' "$TMP/err.txt" ||
    fail "reused batch message: $(cat "$TMP/err.txt")"
expect_eq "jobs stream length after reuse" "$(rcli XLEN t:jobs)" 5

# A generated batch name: UTC time and random hex; from standard input.
gen=$(printf 'x@example.test\n' | "$MXPROBE" submit --no-wait -)
[[ $gen =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$ ]] ||
    fail "generated batch name [$gen]"
expect_eq "generated batch total" "$(rcli HGET "t:batch:$gen" total)" 1
last_id=$(rcli --raw XREVRANGE t:jobs + - COUNT 1 | sed -n 5p)
expect_eq "stdin job id" "$last_id" "$gen:1"

### submit waiting for results pushed while it waits (BLPOP path)
"$MXPROBE" submit --batch w1 --timeout 30 "$TMP/in.txt" \
    > "$TMP/w1.csv" 2> "$TMP/w1.err" &
submit_pid=$!
for _ in $(seq 100); do
    [[ $(rcli HGET t:batch:w1 total) == 5 ]] && break
    sleep 0.1
done
# Out of order, plus one result of another batch, one repeat and one item
# that is no result map: the client must sort, and ignore the rest.
put rpush t:reply:w1 id=w1:7 email=not-an-address status=undeliverable \
    reason=syntax
put rpush t:reply:w1 id=other:2 email=alice@example.test \
    status=deliverable reason=accepted
rcli RPUSH t:reply:w1 'not msgpack' > /dev/null
put rpush t:reply:w1 id=w1:2 email=alice@example.test \
    address=alice@example.test status=deliverable reason=accepted \
    catch_all=false stage=rcpt code=250 enhanced=2.1.5 text=OK \
    mx=mx1.example.test mx_ip=127.0.0.2 attempts=1
sleep 0.3
put rpush t:reply:w1 id=w1:2 email=alice@example.test status=unknown \
    reason=timeout
put rpush t:reply:w1 id=w1:4 email=bob@example.test \
    address=bob@example.test status=undeliverable \
    reason=mailbox_not_found catch_all=false stage=rcpt code=550 \
    enhanced=5.1.1 "text=no such user, \"bob\"" mx=mx1.example.test
put rpush t:reply:w1 'id=w1:5' 'email="odd, name"@example.test' \
    'address="odd, name"@example.test' status=risky reason=catch_all \
    catch_all=true stage=rcpt code=250 text=OK mx=mx1.example.test
put rpush t:reply:w1 id=w1:6 'email=  spaced@example.test ' \
    status=unknown reason=mx_unreachable stage=connect code=0 \
    mx=mx2.example.test
set +e
wait "$submit_pid"
rc=$?
set -e
expect_eq "waiting submit exit code" "$rc" 0
want_csv=$(cat <<'EOF'
email,status,reason,address,catch_all,mx,smtp_code,smtp_enhanced,smtp_text,id
alice@example.test,deliverable,accepted,alice@example.test,false,mx1.example.test,250,2.1.5,OK,w1:2
bob@example.test,undeliverable,mailbox_not_found,bob@example.test,false,mx1.example.test,550,5.1.1,"no such user, ""bob""",w1:4
"""odd, name""@example.test",risky,catch_all,"""odd, name""@example.test",true,mx1.example.test,250,,OK,w1:5
"  spaced@example.test ",unknown,mx_unreachable,,,mx2.example.test,0,,,w1:6
not-an-address,undeliverable,syntax,,,,,,,w1:7
EOF
)
expect_eq "CSV output" "$(cat "$TMP/w1.csv")" "$want_csv"
grep -q 'ignored 2 results on t:reply:w1' "$TMP/w1.err" ||
    fail "stray results not reported: $(cat "$TMP/w1.err")"
grep -q 'ignored 1 items on t:reply:w1 that are not result maps' \
    "$TMP/w1.err" || fail "bad item not reported: $(cat "$TMP/w1.err")"
# Standard error is no terminal here, so no progress line may appear.
if grep -q 'done' "$TMP/w1.err"; then
    fail "progress written to a non-terminal: $(cat "$TMP/w1.err")"
fi
expect_eq "reply list drained" "$(rcli LLEN t:reply:w1)" 0

### JSON lines, results already waiting (drain path), --output FILE
printf 'a@example.test\nb@example.test\n' > "$TMP/two.txt"
put rpush t:reply:j1 id=j1:2 email=b@example.test status=unknown \
    reason=greylisted stage=rcpt code=451 enhanced=4.7.1 \
    $'text=try "later" \\ caf\xc3\xa9' mx=mx.example.test mx_ip=::1 attempts=2 \
    checked_at=1767225600123 duration_ms=1500 worker=w-1
put rpush t:reply:j1 id=j1:1 email=a@example.test status=undeliverable \
    reason=domain_not_found checked_at=5
"$MXPROBE" submit --batch j1 --format jsonl --output "$TMP/j1.jsonl" \
    "$TMP/two.txt"
want_jsonl=$(cat <<'EOF'
{"id":"j1:1","email":"a@example.test","address":null,"status":"undeliverable","reason":"domain_not_found","catch_all":null,"smtp":null,"mx":null,"mx_ip":null,"attempts":0,"checked_at":5,"duration_ms":0,"worker":null}
{"id":"j1:2","email":"b@example.test","address":null,"status":"unknown","reason":"greylisted","catch_all":null,"smtp":{"stage":"rcpt","code":451,"enhanced":"4.7.1","text":"try \"later\" \\ café"},"mx":"mx.example.test","mx_ip":"::1","attempts":2,"checked_at":1767225600123,"duration_ms":1500,"worker":"w-1"}
EOF
)
expect_eq "JSON lines output" "$(cat "$TMP/j1.jsonl")" "$want_jsonl"

### timeout: three of five results, exit 3, partial output
for line in 2 5 7; do
    put rpush t:reply:t1 "id=t1:$line" "email=line$line" status=unknown \
        reason=timeout
done
set +e
"$MXPROBE" submit --batch t1 --timeout 1.5 "$TMP/in.txt" \
    > "$TMP/t1.csv" 2> "$TMP/t1.err"
rc=$?
set -e
expect_eq "timeout exit code" "$rc" 3
grep -q 'timed out with 2 of 5 results missing (batch t1, such as t1:4, t1:6)' \
    "$TMP/t1.err" || fail "timeout message: $(cat "$TMP/t1.err")"
expect_eq "timeout output rows" "$(cut -d, -f1,10 "$TMP/t1.csv")" \
    "$(printf 'email,id\nline2,t1:2\nline5,t1:5\nline7,t1:7')"

### interrupt: SIGINT ends the wait, the results so far are printed
put rpush t:reply:i1 id=i1:1 email=a@example.test status=deliverable \
    reason=accepted
"$MXPROBE" submit --batch i1 --timeout 60 "$TMP/two.txt" \
    > "$TMP/i1.csv" 2> "$TMP/i1.err" &
submit_pid=$!
for _ in $(seq 100); do
    [[ $(rcli LLEN t:reply:i1) == 0 ]] && break
    sleep 0.1
done
sleep 0.5
kill -INT "$submit_pid"
set +e
wait "$submit_pid"
rc=$?
set -e
expect_eq "interrupted submit exit code" "$rc" 3
grep -q 'interrupted with 1 of 2 results missing' "$TMP/i1.err" ||
    fail "interrupt message: $(cat "$TMP/i1.err")"
expect_eq "interrupted output rows" "$(cut -d, -f1,10 "$TMP/i1.csv")" \
    "$(printf 'email,id\na@example.test,i1:1')"

### mxprobe result
put set t:result:r:1 id=r:1 email=carol@example.test \
    address=carol@example.test status=deliverable reason=accepted \
    catch_all=false stage=rcpt code=250 text='2.1.5 Ok' mx=mx.example.test \
    mx_ip=127.0.0.3 attempts=1 checked_at=42 duration_ms=7 worker=w1
out=$("$MXPROBE" result r:1)
expect_eq "result JSON" "$out" '{"id":"r:1","email":"carol@example.test","address":"carol@example.test","status":"deliverable","reason":"accepted","catch_all":false,"smtp":{"stage":"rcpt","code":250,"enhanced":null,"text":"2.1.5 Ok"},"mx":"mx.example.test","mx_ip":"127.0.0.3","attempts":1,"checked_at":42,"duration_ms":7,"worker":"w1"}'
out=$("$MXPROBE" result --format csv r:1)
expect_eq "result CSV" "$out" "$(printf '%s\n%s' \
    'email,status,reason,address,catch_all,mx,smtp_code,smtp_enhanced,smtp_text,id' \
    'carol@example.test,deliverable,accepted,carol@example.test,false,mx.example.test,250,,2.1.5 Ok,r:1')"
# Settings given before the subcommand apply too.
out=$(MXPROBE_PREFIX=other: "$MXPROBE" --prefix t: result r:1 | cut -c1-12)
expect_eq "settings before the subcommand" "$out" '{"id":"r:1",'

set +e
"$MXPROBE" result r:404 > "$TMP/out.txt" 2> "$TMP/err.txt"
rc=$?
set -e
expect_eq "missing result exit code" "$rc" 1
grep -q 'no result for job id "r:404" (key t:result:r:404)' "$TMP/err.txt" ||
    fail "missing result message: $(cat "$TMP/err.txt")"
[[ ! -s $TMP/out.txt ]] || fail "missing result printed [$(cat "$TMP/out.txt")]"

rcli SET t:result:junk 'not msgpack' > /dev/null
set +e
"$MXPROBE" result junk 2> "$TMP/err.txt"
rc=$?
set -e
expect_eq "undecodable result exit code" "$rc" 1
grep -q 'does not hold a result map' "$TMP/err.txt" ||
    fail "undecodable result message: $(cat "$TMP/err.txt")"

### errors: unreachable Redis, bad options
set +e
MXPROBE_REDIS=redis://127.0.0.1:1 "$MXPROBE" submit --no-wait \
    "$TMP/two.txt" 2> "$TMP/err.txt"
rc=$?
set -e
expect_eq "unreachable Redis exit code" "$rc" 1
grep -q 'cannot connect to Redis at 127.0.0.1:1: .*MXPROBE_REDIS' \
    "$TMP/err.txt" || fail "unreachable Redis message: $(cat "$TMP/err.txt")"

check_usage() {
    local want=$1
    shift
    set +e
    "$MXPROBE" "$@" > /dev/null 2> "$TMP/err.txt"
    local rc=$?
    set -e
    expect_eq "exit code of mxprobe $*" "$rc" 2
    grep -q -- "$want" "$TMP/err.txt" ||
        fail "mxprobe $*: message [$(cat "$TMP/err.txt")], want [$want]"
}
check_usage 'invalid --format "xml"' submit --format xml "$TMP/two.txt"
check_usage 'invalid --timeout "0"' submit --timeout 0 "$TMP/two.txt"
check_usage 'invalid --batch "a b"' submit --batch 'a b' "$TMP/two.txt"
check_usage 'exactly one FILE' submit
check_usage 'unknown flag "--nope"' submit --nope 1 "$TMP/two.txt"
check_usage 'unknown subcommand "frobnicate"' frobnicate
check_usage 'result needs at least one job id' result

"$MXPROBE" --help | grep -q '^  submit ' || fail "--help lists no submit"
"$MXPROBE" help result | grep -q 'Usage: mxprobe result' ||
    fail "help result"

echo "client_submit: all checks passed"
