#!/bin/sh
# Context for blog-drafter: the two best-scored notes (points and facts) and the latest session story.
set -eu
grep -H '^score:' Knowledge/*.md | sed 's/:score: */ /' | sort -k2 -rn | head -2 | cut -d' ' -f1 |
while read -r note; do
  echo "=== $note ==="
  awk '/^## Key (Points|Facts)/{found=1; print; next} found && /^## /{found=0} found{print}' "$note"
done
latest=$(ls Sessions/*.md | tail -1)
echo "=== $latest ==="
awk '/^## What happened/{found=1; next} found && /^## /{exit} found{print}' "$latest"
