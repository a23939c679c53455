#!/usr/bin/env bash
# Grep rules of the house style for the C sources of shared/, worker/ and
# coordinator/ (tests and the client's terminal output are exempt from the
# printf rule). Prints each offending line and exits 1 when there is one.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
report()
{
    local rule=$1
    shift
    local hits
    hits=$(grep -nE "$@" || true)
    if [ -n "$hits" ]; then
        echo "check-style: $rule:"
        echo "$hits"
        status=1
    fi
}

daemon_sources=$(ls shared/*.[ch] worker/*.[ch] coordinator/*.[ch])
all_sources=$(ls shared/*.[ch] worker/*.[ch] coordinator/*.[ch] client/*.[ch])

# Markers of unfinished work belong in NOTE comments that say what is
# missing, which scripts/list-notes.sh lists for release review.
report "TODO, FIXME or XXX marker (write a NOTE instead)" \
    '\b(TODO|FIXME|XXX)\b' $all_sources
report "unbounded string function" \
    '\b(strcpy|strcat|sprintf|vsprintf|strtok|gets)\(' $all_sources
report "disabled code" '^#if 0' $all_sources
# Daemons log through log.c, one key=value line per event; main.c files
# print their usage text.
report "printf outside log.c and main.c" '\b(printf|fprintf|puts|fputs)\(' \
    $(grep -vE '(^shared/log\.c|/main\.c|^shared/config\.c)$' <<<"$daemon_sources")
report "line over 80 columns" '^.{81,}$' $all_sources

exit "$status"
