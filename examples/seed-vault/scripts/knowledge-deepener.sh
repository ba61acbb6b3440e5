#!/bin/sh
# Context for knowledge-deepener: the lowest-scoring note, whole.
set -eu
note=$(grep -H '^score:' Knowledge/*.md | sed 's/:score: */ /' | sort -k2 -n | head -1 | cut -d' ' -f1)
echo "Note: $note"
cat "$note"
