#!/bin/sh
# Context for knowledge-quiz: the key points of the three lowest-scoring notes.
set -eu
grep -H '^score:' Knowledge/*.md | sed 's/:score: */ /' | sort -k2 -n | head -3 | cut -d' ' -f1 |
while read -r note; do
  echo "=== $note ==="
  # body only (drop front matter), up to the first section that is not Key Points
  sed '1,/^---$/d' "$note" | awk '/^## [^K]/{exit} {print}'
done
