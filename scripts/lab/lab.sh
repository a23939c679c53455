# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Test lab: real servers on loopback for integration tests. Source this file
# from a bash test, call lab_init, then start what the test needs. Every
# server runs from a fresh folder under /tmp and is stopped by an EXIT trap,
# also when the test fails. Needs root (Postfix and smtp-sink drop
# privileges themselves) and the packages of scripts/install-deps.sh.
#
# Usage summary (names and signatures are stable; other tests rely on them):
#
#   source scripts/lab/lab.sh
#   lab_init [BUILD_DIR]         temp folder, EXIT trap, LAB_SMTP_PORT
#   lab_redis                    redis-server  -> LAB_REDIS_URL
#   lab_dns ZONEFILE             unbound       -> LAB_DNS (127.0.0.1:PORT)
#   lab_dns_count NAME TYPE      prints how many NAME/TYPE queries it got
#   lab_postfix IP DOMAINS MAILBOXES   Postfix on IP:LAB_SMTP_PORT
#   lab_exim IP DOMAINS MAILBOXES      Exim on IP:LAB_SMTP_PORT
#   lab_smtp_sink IP [SMTP_SINK_ARGS...]  smtp-sink on IP:LAB_SMTP_PORT
#   lab_fake_smtp IP SCENARIO    fake-smtp on IP:LAB_SMTP_PORT (IP may be ::1)
#   lab_smtp_talk IP CMD...      raw SMTP dialogue, prints every reply line
#   lab_tls_cert                 self-signed cert -> LAB_TLS_CERT/LAB_TLS_KEY
#   lab_wait_log FILE REGEX [SECONDS]  waits until a line matches
#   lab_count FILE REGEX         prints the number of matching lines
#   lab_on_exit COMMAND          runs COMMAND (eval) first during cleanup
#   lab_fail MESSAGE             prints "lab: MESSAGE" and exits 1
#
# Variables set (and exported) by the functions above:
#   LAB_ROOT        repository root (from this file's location)
#   LAB_BUILD_DIR   build folder (lab_init's argument, default LAB_ROOT/build)
#   LAB_DIR         this test's temp folder
#   LAB_SMTP_PORT   one TCP port for every SMTP server of the test: MX hosts
#                   differ by address (127.0.0.2, 127.0.0.3, ... or ::1)
#   LAB_REDIS_URL   redis://127.0.0.1:PORT   (also LAB_REDIS_PORT)
#   LAB_DNS         127.0.0.1:PORT           (also LAB_DNS_PORT, LAB_DNS_LOG)
#   LAB_POSTFIX_LOG maillog of the last lab_postfix (lab_postfix_log IP)
#   LAB_EXIM_LOG    mainlog of the last lab_exim (lab_exim_log IP)
#   LAB_FAKE_LOG    transcript of the last lab_fake_smtp (lab_fake_log IP)
#   LAB_SINK_LOG    output of the last lab_smtp_sink
#
# Zone file of lab_dns, one record per line, '#' starts a comment line:
#   NAME [TTL] TYPE DATA...   any record type unbound's local-data takes:
#                             example.test MX 10 mx1.example.test
#                             mx1.example.test A 127.0.0.2
#                             nullmx.test MX 0 .      (RFC 7505 null MX)
#   NAME NXDOMAIN             NAME and everything below it: NXDOMAIN
#   NAME SERVFAIL             NAME and everything below it: SERVFAIL
#   NAME REFUSED              NAME and everything below it: REFUSED
#   NAME TIMEOUT              queries for NAME are dropped without a reply
# Names are absolute (a trailing dot is optional). Every name that the file
# does not define answers NXDOMAIN: the server never asks the outside world.
#
# Call the functions directly, not in $(...): they record the processes
# to stop in shell variables, which a subshell would lose.
#
# Set LAB_KEEP=1 to keep the temp folder after a passing test; after a
# failing one it is always kept, and its path is printed.

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_START_TIMEOUT=${LAB_START_TIMEOUT:-10}

LAB_PIDS=()
LAB_PID_NAMES=()
LAB_POSTFIX_DIRS=()
LAB_EXIT_HOOKS=()
LAB_TAKEN_PORTS=()

lab_fail()
{
    echo "lab: $*" >&2
    exit 1
}

lab_log()
{
    echo "lab: $*" >&2
}

lab_on_exit()
{
    LAB_EXIT_HOOKS+=("$1")
}

# Folder-safe form of an address: 127.0.0.2 stays, ::1 becomes __1.
lab_ip_tag()
{
    echo "${1//:/_}"
}

lab_is_ipv6()
{
    [[ "$1" == *:* ]]
}

# Prints "host:port" for a listener, with IPv6 in brackets.
lab_hostport()
{
    if lab_is_ipv6 "$1"; then
        echo "[$1]:$2"
    else
        echo "$1:$2"
    fi
}

# Sets LAB_FREE_PORT to a port that no socket on this machine uses and that
# this test has not handed out yet. It sets a variable instead of printing
# because a $(...) subshell would lose the record of ports handed out. The
# range stays below Linux's default ephemeral range (32768-60999), so
# outgoing connections cannot take the port before the server binds it.
lab_free_port()
{
    local used port try
    used=$(ss -Htuan 2>/dev/null | awk '{ n = split($5, a, ":"); print a[n] }')
    for try in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        if grep -qx "$port" <<<"$used"; then
            continue
        fi
        if [[ " ${LAB_TAKEN_PORTS[*]} " == *" $port "* ]]; then
            continue
        fi
        LAB_TAKEN_PORTS+=("$port")
        LAB_FREE_PORT=$port
        return 0
    done
    lab_fail "no free port found in 20000-31999 after $try tries"
}

# Waits until something listens on IP:PORT (tcp or udp) without connecting,
# so no test server logs a connection that the test did not make.
lab_wait_listen()
{
    local ip=$1 port=$2 proto=${3:-tcp} timeout=${4:-$LAB_START_TIMEOUT}
    local flag=-Hltn deadline=$((SECONDS + timeout)) local_addr
    [ "$proto" = udp ] && flag=-Hlun
    local_addr=$(lab_hostport "$ip" "$port")
    while [ "$SECONDS" -le "$deadline" ]; do
        if ss $flag "sport = :$port" 2>/dev/null |
            awk '{ print $4 }' | grep -qxF "$local_addr"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Checks that a recorded process is still alive; fails with its log if not.
lab_check_alive()
{
    local pid=$1 what=$2 log=$3
    if ! kill -0 "$pid" 2>/dev/null; then
        lab_log "$what exited during startup; last lines of $log:"
        tail -n 20 "$log" >&2 2>/dev/null
        exit 1
    fi
}

# Fails when called in a subshell such as $(...): a process started there
# would escape the cleanup list of the test's own shell.
lab_require_main_shell()
{
    [ "$BASHPID" = "$$" ] ||
        lab_fail "$1 must not run in a subshell such as \$(...)"
}

lab_track()
{
    LAB_PIDS+=("$1")
    LAB_PID_NAMES+=("$2")
}

lab_wait_log()
{
    local file=$1 regex=$2 timeout=${3:-$LAB_START_TIMEOUT}
    local deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -le "$deadline" ]; do
        if [ -f "$file" ] && grep -Eq -- "$regex" "$file"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

lab_count()
{
    local n
    n=$(grep -Ec -- "$2" "$1" 2>/dev/null)
    echo "${n:-0}"
}

lab_stop_pid()
{
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    # Both fail harmlessly for a process that already exited; under
    # set -e an unguarded failure here would fail a passing test.
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 0
}

lab_stop_postfix()
{
    local dir=$1 pid
    postfix -c "$dir/etc" abort >/dev/null 2>&1
    pid=$(tr -dc 0-9 <"$dir/queue/pid/master.pid" 2>/dev/null)
    if [ -n "$pid" ]; then
        lab_stop_pid "$pid"
    fi
}

lab_cleanup()
{
    local rc=$? i hook
    trap - EXIT
    for hook in "${LAB_EXIT_HOOKS[@]}"; do
        eval "$hook" || true
    done
    for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
        lab_stop_pid "${LAB_PIDS[$i]}"
    done
    for i in "${LAB_POSTFIX_DIRS[@]}"; do
        lab_stop_postfix "$i"
    done
    if [ -n "${LAB_DIR:-}" ] && [ -d "$LAB_DIR" ]; then
        if [ "$rc" -ne 0 ]; then
            lab_log "test failed (exit $rc); logs kept in $LAB_DIR"
        elif [ "${LAB_KEEP:-0}" = 1 ]; then
            lab_log "LAB_KEEP=1: logs kept in $LAB_DIR"
        else
            rm -rf "$LAB_DIR"
        fi
    fi
    exit "$rc"
}

lab_init()
{
    lab_require_main_shell lab_init
    [ "$(id -u)" -eq 0 ] ||
        lab_fail "must run as root (Postfix and smtp-sink need it)"
    LAB_BUILD_DIR=$(cd "${1:-${LAB_BUILD_DIR:-$LAB_ROOT/build}}" 2>/dev/null &&
        pwd) || lab_fail "build folder ${1:-$LAB_ROOT/build} not found"
    LAB_DIR=$(mktemp -d /tmp/mxprobe-lab.XXXXXX) ||
        lab_fail "cannot create a temp folder under /tmp"
    # Postfix daemons run as user postfix and must reach their queue here.
    chmod 755 "$LAB_DIR"
    trap lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    lab_free_port
    LAB_SMTP_PORT=$LAB_FREE_PORT
    export LAB_ROOT LAB_BUILD_DIR LAB_DIR LAB_SMTP_PORT
}

# ---------------------------------------------------------------- redis

lab_redis()
{
    local dir=$LAB_DIR/redis port pid deadline
    lab_require_main_shell lab_redis
    mkdir -p "$dir"
    lab_free_port
    port=$LAB_FREE_PORT
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --appendonly yes --save '' --daemonize no \
        --logfile "$dir/redis.log" >/dev/null 2>&1 &
    pid=$!
    lab_track "$pid" redis-server
    deadline=$((SECONDS + LAB_START_TIMEOUT))
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
        lab_check_alive "$pid" "redis-server on port $port" "$dir/redis.log"
        [ "$SECONDS" -le "$deadline" ] || lab_fail "redis-server on" \
            "127.0.0.1:$port did not answer PING within" \
            "${LAB_START_TIMEOUT}s; read $dir/redis.log"
        sleep 0.05
    done
    LAB_REDIS_PORT=$port
    LAB_REDIS_URL=redis://127.0.0.1:$port
    export LAB_REDIS_PORT LAB_REDIS_URL
}

# ---------------------------------------------------------------- dns

# Writes unbound directives for one zone-file line to stdout.
lab_dns_record()
{
    local name=$1 ttl=3600 type
    shift
    name="${name%.}."
    if [[ "$1" =~ ^[0-9]+$ ]]; then
        ttl=$1
        shift
    fi
    type=${1^^}
    shift
    case "$type" in
    NXDOMAIN)
        echo "    local-zone: \"$name\" always_nxdomain" ;;
    REFUSED)
        echo "    local-zone: \"$name\" always_refuse" ;;
    TIMEOUT)
        echo "    local-zone: \"$name\" deny" ;;
    SERVFAIL)
        # Forwarding to 127.0.0.1 while do-not-query-localhost is on leaves
        # unbound no usable server, so it returns SERVFAIL at once.
        echo "    local-zone: \"$name\" transparent"
        echo "$name" >>"$LAB_DIR/dns/servfail.list" ;;
    *)
        [ $# -gt 0 ] || return 1
        echo "    local-data: \"$name $ttl IN $type $*\"" ;;
    esac
}

lab_dns_config()
{
    local zonefile=$1 dir=$2 port=$3 line name lineno=0
    cat <<EOF
server:
    interface: 127.0.0.1
    port: $port
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    logfile: "$dir/unbound.log"
    use-syslog: no
    log-queries: yes
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    outgoing-range: 32
    do-ip6: no
    module-config: "iterator"
    do-not-query-localhost: yes
    # The whole tree is local: names that the zone file does not define get
    # NXDOMAIN, so no query ever leaves this machine.
    local-zone: "." static
EOF
    : >"$dir/servfail.list"
    while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        line=${line%%$'\r'}
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        # shellcheck disable=SC2086
        lab_dns_record $line ||
            lab_fail "$zonefile:$lineno: invalid record: $line"
    done <"$zonefile"
    while IFS= read -r name; do
        printf 'forward-zone:\n    name: "%s"\n' "$name"
        printf '    forward-addr: 127.0.0.1\n'
    done <"$dir/servfail.list"
    printf 'remote-control:\n    control-enable: no\n'
}

lab_dns()
{
    local zonefile=$1 dir=$LAB_DIR/dns port pid
    lab_require_main_shell lab_dns
    [ -f "$zonefile" ] || lab_fail "lab_dns: zone file $zonefile not found"
    mkdir -p "$dir"
    lab_free_port
    port=$LAB_FREE_PORT
    lab_dns_config "$zonefile" "$dir" "$port" >"$dir/unbound.conf" || exit 1
    unbound-checkconf "$dir/unbound.conf" >"$dir/checkconf.out" 2>&1 ||
        lab_fail "unbound rejected the config made from $zonefile:" \
            "$(cat "$dir/checkconf.out"); read $dir/unbound.conf"
    unbound -d -c "$dir/unbound.conf" >"$dir/unbound.out" 2>&1 &
    pid=$!
    lab_track "$pid" unbound
    if ! lab_wait_listen 127.0.0.1 "$port" udp ||
        ! lab_wait_listen 127.0.0.1 "$port" tcp; then
        lab_check_alive "$pid" "unbound on port $port" "$dir/unbound.log"
        lab_fail "unbound did not listen on 127.0.0.1:$port within" \
            "${LAB_START_TIMEOUT}s; read $dir/unbound.log"
    fi
    LAB_DNS_PORT=$port
    LAB_DNS=127.0.0.1:$port
    LAB_DNS_LOG=$dir/unbound.log
    export LAB_DNS LAB_DNS_PORT LAB_DNS_LOG
}

# Prints how many queries for NAME with TYPE unbound logged (log-queries
# writes "info: CLIENT NAME. TYPE IN" for each query, cached or not).
lab_dns_count()
{
    local name="${1%.}." type=${2^^} n
    n=$(grep -Fic -- " $name $type IN" "$LAB_DNS_LOG" 2>/dev/null)
    echo "${n:-0}"
}

# ---------------------------------------------------------------- postfix

lab_postfix_main_cf()
{
    local dir=$1 ip=$2 domains=$3 protocols=ipv4
    lab_is_ipv6 "$ip" && protocols=all
    cat <<EOF
# Lab Postfix: accepts mail for its listed domains, rejects unknown
# recipients at RCPT time (550 5.1.1), relays nothing and delivers nothing.
compatibility_level = 3.6
config_directory = $dir/etc
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx-$(lab_ip_tag "$ip").lab.test
mydomain = lab.test
myorigin = \$myhostname
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8 [::1]/128
inet_interfaces = loopback-only
inet_protocols = $protocols
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = $domains
virtual_mailbox_maps = texthash:$dir/etc/mailboxes
virtual_alias_maps =
virtual_transport = discard:lab
default_transport = error:lab: outbound delivery disabled
relay_transport = error:lab: outbound delivery disabled
local_transport = error:lab: local delivery disabled
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient, permit
smtpd_banner = \$myhostname ESMTP lab
maillog_file = $dir/maillog
maillog_file_prefixes = /tmp
smtp_host_lookup = native
biff = no
EOF
}

lab_postfix_master_cf()
{
    local listen=$1
    cat <<EOF
$listen inet n - n - - smtpd
pickup    unix  n  -  n  60    1  pickup
cleanup   unix  n  -  n  -     0  cleanup
qmgr      unix  n  -  n  300   1  qmgr
rewrite   unix  -  -  n  -     -  trivial-rewrite
bounce    unix  -  -  n  -     0  bounce
defer     unix  -  -  n  -     0  bounce
trace     unix  -  -  n  -     0  bounce
verify    unix  -  -  n  -     1  verify
flush     unix  n  -  n  1000  0  flush
proxymap  unix  -  -  n  -     -  proxymap
smtp      unix  -  -  n  -     -  smtp
showq     unix  n  -  n  -     -  showq
error     unix  -  -  n  -     -  error
retry     unix  -  -  n  -     -  error
discard   unix  -  -  n  -     -  discard
anvil     unix  -  -  n  -     1  anvil
scache    unix  -  -  n  -     1  scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

lab_postfix_log()
{
    echo "$LAB_DIR/postfix-$(lab_ip_tag "$1")/maillog"
}

lab_postfix()
{
    local ip=$1 domains=$2 mailboxes=$3 dir listen box domain_list
    lab_require_main_shell lab_postfix
    [ $# -eq 3 ] || lab_fail "usage: lab_postfix IP DOMAINS MAILBOXES"
    dir=$LAB_DIR/postfix-$(lab_ip_tag "$ip")
    listen=$(lab_hostport "$ip" "$LAB_SMTP_PORT")
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    chown postfix "$dir/data"
    read -ra domain_list <<<"${domains//,/ }"
    domains=$(IFS=,; echo "${domain_list[*]}")
    lab_postfix_main_cf "$dir" "$ip" "$domains" >"$dir/etc/main.cf"
    lab_postfix_master_cf "$listen" >"$dir/etc/master.cf"
    : >"$dir/etc/mailboxes"
    for box in $(tr ',' ' ' <<<"$mailboxes"); do
        echo "$box lab" >>"$dir/etc/mailboxes"
    done
    LAB_POSTFIX_DIRS+=("$dir")

    if ! postfix -c "$dir/etc" start >"$dir/start.out" 2>&1; then
        # Postfix prints startup errors only to a terminal or syslog, so
        # rerun its check under script(1) to show the reason.
        script -qec "postfix -c $dir/etc check" /dev/null \
            </dev/null >>"$dir/start.out" 2>&1
        lab_fail "Postfix on $listen failed to start:" \
            "$(tr -d '\r' <"$dir/start.out" | tail -n 5);" \
            "read $dir/maillog and $dir/start.out"
    fi
    lab_wait_listen "$ip" "$LAB_SMTP_PORT" tcp ||
        lab_fail "Postfix did not listen on $listen within" \
            "${LAB_START_TIMEOUT}s; read $dir/maillog"
    LAB_POSTFIX_LOG=$dir/maillog
    export LAB_POSTFIX_LOG
}

# ---------------------------------------------------------------- exim

# Exim 4.96 from Debian's exim4-daemon-light, unpacked (not installed,
# because it conflicts with postfix) by scripts/install-deps.sh.
LAB_EXIM=${LAB_EXIM:-/var/cache/mxprobe/exim4/usr/sbin/exim4}

lab_exim_conf()
{
    local dir=$1 ip=$2 domains=$3 listen=$4
    cat <<EOF
# Lab Exim: accepts RCPT for the mailboxes in $dir/mailboxes, rejects other
# recipients of its domains with Exim's own "550 Unrouteable address" and
# other domains with "550 relay not permitted". It refuses DATA, queues
# what it accepts instead of delivering it, and runs no queue runner,
# so nothing leaves this process.
primary_hostname = mx-$(lab_ip_tag "$ip").lab.test
domainlist local_domains = $domains
domainlist relay_to_domains =
hostlist relay_from_hosts =
local_interfaces = <; $listen
exim_path = $LAB_EXIM
spool_directory = $dir/spool
log_file_path = $dir/log/%slog
pid_file_path = $dir/exim.pid
log_selector = +smtp_connection +incoming_interface +smtp_protocol_error \\
    +smtp_syntax_error
keep_environment =
# No DNS and no ident: reverse lookups of clients or of a HELO name equal
# to our own would ask the resolver, and RFC 1413 would connect back.
host_lookup =
helo_lookup_domains =
rfc1413_hosts =
rfc1413_query_timeout = 0s
# No STARTTLS, as in lab_postfix, so probes of either MTA run in clear text.
tls_advertise_hosts =
queue_only = true
${LAB_EXIM_RECIPIENTS_MAX:+recipients_max = $LAB_EXIM_RECIPIENTS_MAX}
acl_smtp_rcpt = lab_check_rcpt
acl_smtp_predata = lab_check_predata

begin acl

# The first two statements of Exim's default configuration: foreign
# domains are refused, then the routers must accept the address.
lab_check_rcpt:
  require message = relay not permitted
          domains = +local_domains : +relay_to_domains
  require verify = recipient
  accept

lab_check_predata:
  deny message = lab: DATA disabled

begin routers

lab_mailbox:
  driver = accept
  domains = +local_domains
  condition = \${lookup{\$local_part@\$domain}lsearch{$dir/mailboxes}{yes}{no}}
  transport = lab_discard

begin transports

# Never used, because DATA is rejected and queue_only keeps every message
# in the spool.
lab_discard:
  driver = appendfile
  file = /dev/null
  user = Debian-exim
EOF
}

lab_exim_log()
{
    echo "$LAB_DIR/exim-$(lab_ip_tag "$1")/log/mainlog"
}

# Mailbox lookups (lsearch) ignore the case of the address; MAILBOXES and
# DOMAINS are comma- or space-separated. LAB_EXIM_RECIPIENTS_MAX, when set,
# becomes Exim's recipients_max (RCPTs per message; more get a 452).
lab_exim()
{
    local ip=$1 domains=$2 mailboxes=$3 dir listen pid box domain_list
    lab_require_main_shell lab_exim
    [ $# -eq 3 ] || lab_fail "usage: lab_exim IP DOMAINS MAILBOXES"
    [ -x "$LAB_EXIM" ] || lab_fail "Exim binary $LAB_EXIM not found; run" \
        "scripts/install-deps.sh as root or set LAB_EXIM"
    getent passwd Debian-exim >/dev/null || lab_fail "system user" \
        "Debian-exim is missing; run scripts/install-deps.sh as root"
    dir=$LAB_DIR/exim-$(lab_ip_tag "$ip")
    listen="$ip.$LAB_SMTP_PORT"
    mkdir -p "$dir/spool" "$dir/log"
    # Exim runs as Debian-exim once it has bound its socket.
    chown Debian-exim:Debian-exim "$dir/spool" "$dir/log"
    read -ra domain_list <<<"${domains//,/ }"
    domains=$(IFS=:; echo "${domain_list[*]}")
    domains=${domains//:/ : }
    : >"$dir/mailboxes"
    for box in $(tr ',' ' ' <<<"$mailboxes"); do
        echo "$box" >>"$dir/mailboxes"
    done
    lab_exim_conf "$dir" "$ip" "$domains" "$listen" >"$dir/exim.conf"
    chmod 644 "$dir/exim.conf" "$dir/mailboxes"

    # -bdf keeps the daemon in the foreground, so its pid is the one to
    # stop; -C works for root without a trusted-configs entry.
    "$LAB_EXIM" -C "$dir/exim.conf" -bdf >"$dir/exim.out" 2>&1 &
    pid=$!
    lab_track "$pid" exim
    if ! lab_wait_listen "$ip" "$LAB_SMTP_PORT" tcp; then
        cat "$dir/log/paniclog" >>"$dir/exim.out" 2>/dev/null
        lab_check_alive "$pid" "Exim on $(lab_hostport "$ip" \
            "$LAB_SMTP_PORT")" "$dir/exim.out"
        lab_fail "Exim did not listen on $(lab_hostport "$ip" \
            "$LAB_SMTP_PORT") within ${LAB_START_TIMEOUT}s; read" \
            "$dir/log/mainlog and $dir/exim.out"
    fi
    LAB_EXIM_LOG=$dir/log/mainlog
    export LAB_EXIM_LOG
}

# ---------------------------------------------------------------- smtp-sink

lab_smtp_sink()
{
    local ip=$1 log pid listen family=()
    lab_require_main_shell lab_smtp_sink
    shift
    log=$LAB_DIR/smtp-sink-$(lab_ip_tag "$ip").log
    listen=$(lab_hostport "$ip" "$LAB_SMTP_PORT")
    lab_is_ipv6 "$ip" && family=(-6)
    # smtp-sink refuses to keep root privileges: -u drops them after bind.
    smtp-sink "${family[@]}" -u nobody -h "sink-$(lab_ip_tag "$ip").lab.test" \
        "$@" "$listen" 1024 >"$log" 2>&1 &
    pid=$!
    lab_track "$pid" smtp-sink
    if ! lab_wait_listen "$ip" "$LAB_SMTP_PORT" tcp; then
        lab_check_alive "$pid" "smtp-sink on $listen" "$log"
        lab_fail "smtp-sink did not listen on $listen; read $log"
    fi
    LAB_SINK_LOG=$log
    export LAB_SINK_LOG
}

# ---------------------------------------------------------------- fake-smtp

lab_tls_cert()
{
    local dir=$LAB_DIR/tls
    if [ -f "$dir/cert.pem" ]; then
        return 0
    fi
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 2 -subj /CN=lab.test -keyout "$dir/key.pem" \
        -out "$dir/cert.pem" >"$dir/openssl.out" 2>&1 ||
        lab_fail "openssl req failed; read $dir/openssl.out"
    LAB_TLS_CERT=$dir/cert.pem
    LAB_TLS_KEY=$dir/key.pem
    export LAB_TLS_CERT LAB_TLS_KEY
}

lab_fake_log()
{
    echo "$LAB_DIR/fake-smtp-$(lab_ip_tag "$1").log"
}

# SCENARIO is a file path, or a name of tests/scenarios/NAME.scn.
lab_fake_smtp()
{
    local ip=$1 scenario=$2 bin log out pid listen tls=()
    lab_require_main_shell lab_fake_smtp
    bin=${LAB_FAKE_SMTP:-$LAB_BUILD_DIR/tests/fake_smtp/fake-smtp}
    [ -x "$bin" ] || lab_fail "fake-smtp binary $bin not found; build" \
        "the fake-smtp target or set LAB_FAKE_SMTP"
    if [ ! -f "$scenario" ]; then
        scenario=$LAB_ROOT/tests/scenarios/${scenario%.scn}.scn
    fi
    [ -f "$scenario" ] || lab_fail "scenario $2 not found (looked for" \
        "the path and for $scenario)"
    if grep -qi '^[[:space:]]*starttls' "$scenario"; then
        lab_tls_cert
        tls=(-c "$LAB_TLS_CERT" -k "$LAB_TLS_KEY")
    fi
    log=$(lab_fake_log "$ip")
    out=${log%.log}.out
    listen=$(lab_hostport "$ip" "$LAB_SMTP_PORT")
    "$bin" -a "$ip" -p "$LAB_SMTP_PORT" -s "$scenario" -l "$log" \
        "${tls[@]}" >"$out" 2>&1 &
    pid=$!
    lab_track "$pid" fake-smtp
    if ! lab_wait_listen "$ip" "$LAB_SMTP_PORT" tcp; then
        lab_check_alive "$pid" "fake-smtp on $listen" "$out"
        lab_fail "fake-smtp did not listen on $listen; read $out"
    fi
    LAB_FAKE_LOG=$log
    export LAB_FAKE_LOG
}

# ---------------------------------------------------------------- client

# Talks SMTP to IP:LAB_SMTP_PORT (or LAB_TALK_PORT): reads the greeting,
# then sends each CMD and reads its whole reply. Prints every reply line
# (CR removed). Stops early when the server closes. Returns 1 when the
# connection failed. Waits at most LAB_TALK_TIMEOUT seconds (default 5)
# for each line.
lab_smtp_talk()
{
    local ip=$1 port=${LAB_TALK_PORT:-$LAB_SMTP_PORT}
    local timeout=${LAB_TALK_TIMEOUT:-5} fd line cmd
    shift
    exec {fd}<>"/dev/tcp/$ip/$port" 2>/dev/null || return 1
    lab_read_reply "$fd" "$timeout"
    for cmd in "$@"; do
        printf '%s\r\n' "$cmd" 1>&"$fd" 2>/dev/null || break
        lab_read_reply "$fd" "$timeout" || break
    done
    exec {fd}>&-
    return 0
}

# Reads one reply (all continuation lines); returns 1 at end of stream.
lab_read_reply()
{
    local fd=$1 timeout=$2 line
    while IFS= read -r -t "$timeout" line <&"$fd"; do
        line=${line%$'\r'}
        echo "$line"
        [[ "$line" =~ ^[0-9]{3}- ]] || return 0
    done
    return 1
}
