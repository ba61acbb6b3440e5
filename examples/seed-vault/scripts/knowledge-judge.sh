#!/bin/sh
# Context for knowledge-judge: the four notes reviewed longest ago, front matter and body.
set -eu
grep -H '^last_reviewed:' Knowledge/*.md | sed 's/:last_reviewed: */ /' | sort -k2 | head -4 | cut -d' ' -f1 |
while read -r note; do
  echo "=== $note ==="
  head -30 "$note"
  echo
done
