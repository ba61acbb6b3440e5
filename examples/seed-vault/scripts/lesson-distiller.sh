#!/bin/sh
# Context for lesson-distiller: the Lessons sections of the last three sessions.
set -eu
for s in $(ls Sessions/*.md | tail -3); do
  echo "=== $s ==="
  awk '/^## Lessons/{found=1; next} found && /^## /{exit} found && NF{print}' "$s"
done
echo
echo "## Existing practice notes"
ls Knowledge/practice--*.md 2>/dev/null || echo "(none)"
