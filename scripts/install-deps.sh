#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Installs every Debian 12 package that the build and the tests need.
# Idempotent: each package is checked with dpkg -s first, and apt-get update
# runs once, only when something is missing. Must run as root.
#
# The tests start their own redis-server, unbound and Postfix instances on
# loopback ports, so this script keeps the system-wide services of those
# packages from starting: a policy-rc.d denies starts during the install, and
# the services are stopped once right after it, for init systems that ignore
# policy-rc.d. A run that installs nothing touches no running service.
#
# The lab's second MTA is Exim (lab_exim in scripts/lab/lab.sh). Debian's
# exim4-daemon-light conflicts with postfix because both provide
# mail-transport-agent, so apt-get cannot install it here. Instead the .deb
# is fetched once with apt-get download into $MTA2_CACHE and unpacked with
# dpkg-deb -x into $MTA2_ROOT; only its shared libraries (which conflict with
# nothing) come from apt-get install, and the system user Debian-exim that
# the binary drops privileges to is created if missing.

set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libhiredis-dev libc-ares-dev libev-dev libmsgpack-dev libidn2-dev
    libssl-dev openssl
    redis-server redis-tools
    postfix
    unbound
    bind9-dnsutils
    swaks
    iproute2
    docker-compose
    jq
    # The tests run python3 (worker_tool.py) and pgrep from procps directly,
    # so both are named here, not left as dependencies of postfix and cmake.
    python3 procps
    # Shared libraries of exim4-daemon-light 4.96 (Debian 12), which is
    # unpacked from its .deb instead of installed; see install_exim.
    libc6 libcrypt1 libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0
    libnsl2 libpcre2-8-0
)

MTA2_PACKAGE=exim4-daemon-light
MTA2_USER=Debian-exim
MTA2_CACHE=/var/cache/mxprobe
MTA2_ROOT=$MTA2_CACHE/exim4

SERVICES=(redis-server postfix unbound)

die()
{
    echo "install-deps: $*" >&2
    exit 1
}

is_installed()
{
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

list_missing()
{
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! is_installed "$pkg"; then
            echo "$pkg"
        fi
    done
}

# A policy-rc.d that exits 101 tells invoke-rc.d not to start services, so
# installing redis-server, postfix or unbound does not grab their ports.
# An existing policy-rc.d is left alone and restored afterwards.
POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""

install_policy()
{
    if [ -e "$POLICY" ]; then
        POLICY_BACKUP=$(mktemp)
        cp -p "$POLICY" "$POLICY_BACKUP"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
}

restore_policy()
{
    if [ -n "$POLICY_BACKUP" ]; then
        cp -p "$POLICY_BACKUP" "$POLICY"
        rm -f "$POLICY_BACKUP"
    else
        rm -f "$POLICY"
    fi
}

stop_services()
{
    local svc
    for svc in "${SERVICES[@]}"; do
        if command -v systemctl >/dev/null 2>&1 &&
            [ -d /run/systemd/system ]; then
            systemctl stop "$svc" >/dev/null 2>&1 || true
            systemctl disable "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
}

install_packages()
{
    local missing

    mapfile -t missing < <(list_missing)
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "install-deps: all ${#PACKAGES[@]} packages already installed"
        return 0
    fi

    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" |
        debconf-set-selections
    echo "postfix postfix/mailname string mxprobe.invalid" |
        debconf-set-selections

    install_policy
    trap restore_policy EXIT
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    restore_policy
    trap - EXIT

    stop_services

    mapfile -t missing < <(list_missing)
    if [ "${#missing[@]}" -ne 0 ]; then
        die "still missing after apt-get install: ${missing[*]}"
    fi
}

# Creates the system user and group Debian-exim, which Debian's exim4 binary
# has compiled in as its exim user. Without them the binary exits at once
# with 'failed to find uid for user name "Debian-exim"'.
create_exim_user()
{
    if getent passwd "$MTA2_USER" >/dev/null; then
        return 0
    fi
    echo "install-deps: creating system user $MTA2_USER"
    if ! getent group "$MTA2_USER" >/dev/null; then
        groupadd --system "$MTA2_USER"
    fi
    useradd --system --gid "$MTA2_USER" --no-create-home \
        --home-dir /var/spool/exim4 --shell /usr/sbin/nologin "$MTA2_USER"
}

# Prints the path of the cached .deb, downloading it first if the cache has
# none. A cached file is kept as it is: delete it to fetch a newer version.
fetch_exim_deb()
{
    local deb tmp
    mkdir -p "$MTA2_CACHE"
    deb=$(find "$MTA2_CACHE" -maxdepth 1 -name "${MTA2_PACKAGE}_*.deb" |
        sort -V | tail -n 1)
    if [ -n "$deb" ]; then
        echo "$deb"
        return 0
    fi
    # apt-get download writes as user _apt where that user exists, so it
    # gets a folder of its own and the file moves to the cache afterwards.
    tmp=$(mktemp -d)
    if getent passwd _apt >/dev/null; then
        chown _apt "$tmp"
    fi
    # Package lists may be missing or stale (install_packages updates them
    # only when it installs something), so a failed download is retried
    # once after apt-get update.
    if ! (cd "$tmp" && apt-get download "$MTA2_PACKAGE" >&2); then
        apt-get update >&2
        if ! (cd "$tmp" && apt-get download "$MTA2_PACKAGE" >&2); then
            rm -rf "$tmp"
            die "apt-get download $MTA2_PACKAGE failed; check the apt" \
                "sources for Debian 12 (bookworm) and retry"
        fi
    fi
    deb=$(find "$tmp" -maxdepth 1 -name "${MTA2_PACKAGE}_*.deb" | head -n 1)
    [ -n "$deb" ] || die "apt-get download left no ${MTA2_PACKAGE}_*.deb"
    mv "$deb" "$MTA2_CACHE/"
    rm -rf "$tmp"
    echo "$MTA2_CACHE/$(basename "$deb")"
}

# Unpacks the cached .deb into MTA2_ROOT unless the stamp file shows that
# this very file is already unpacked there, then checks that the binary
# finds all its shared libraries.
install_exim()
{
    local deb stamp=$MTA2_ROOT/.unpacked-from bin=$MTA2_ROOT/usr/sbin/exim4
    local missing_libs

    create_exim_user
    deb=$(fetch_exim_deb)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$(basename "$deb")" ] &&
        [ -x "$bin" ]; then
        echo "install-deps: $(basename "$deb") already unpacked in $MTA2_ROOT"
    else
        echo "install-deps: unpacking $(basename "$deb") into $MTA2_ROOT"
        rm -rf "$MTA2_ROOT"
        mkdir -p "$MTA2_ROOT"
        dpkg-deb -x "$deb" "$MTA2_ROOT"
        # The lab runs the binary as root, so the setuid-root bit that
        # the package sets on it is not needed outside the package.
        chmod u-s "$bin"
        basename "$deb" >"$stamp"
    fi
    missing_libs=$(ldd "$bin" | grep 'not found' || true)
    [ -z "$missing_libs" ] || die "$bin lacks shared libraries:" \
        "$missing_libs"
}

main()
{
    [ "$(id -u)" -eq 0 ] || die "must run as root (apt-get needs it)"

    install_packages
    install_exim
    echo "install-deps: done"
}

main "$@"
