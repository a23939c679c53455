#!/usr/bin/env bash
# docker-compose.yml must stay a valid Compose file with a scalable worker,
# Redis with AOF on, and the coordinator. No Docker engine is needed.
set -euo pipefail

config=$(docker-compose -f docker-compose.yml config)
fail=0
for service in redis coordinator worker; do
    if ! grep -q "^  ${service}:" <<<"$config"; then
        echo "FAIL: docker-compose.yml has no service named ${service}"
        fail=1
    fi
done
if ! grep -q -- "--appendonly" <<<"$config"; then
    echo "FAIL: the redis service does not turn AOF on (--appendonly yes)"
    fail=1
fi
if grep -A20 "^  worker:" <<<"$config" | grep -q "container_name:"; then
    echo "FAIL: the worker has a fixed container_name, so it cannot scale"
    fail=1
fi
[ "$fail" = 0 ] && echo "compose_config: ok"
exit "$fail"
