#!/bin/sh
# Context for chore-rota: every chore, how often it is done, when it was last done and by whom.
set -eu
echo "=== House/chores.csv (week of ${AUTOVAULT_DATE:-$(date +%F)}) ==="
cat House/chores.csv
