#!/usr/bin/env bash
# The grep rules of the house style hold for every source file.
set -euo pipefail
scripts/check-style.sh
echo "check_style: ok"
