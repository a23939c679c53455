#!/usr/bin/env bash
# Lists the NOTE comments (known gaps) in the sources, for release review.
cd "$(dirname "$0")/.." && grep -rn --include='*.[ch]' 'NOTE:' shared worker coordinator client
