#!/bin/sh
# Context for packing-list: the newest trip plan.
set -eu
plan=$(ls -r Trips/plan-*.md 2>/dev/null | head -1)
[ -n "$plan" ] || { echo "no trip plan yet (Trips/plan-*.md)" >&2; exit 1; }
echo "=== $plan ==="
cat "$plan"
