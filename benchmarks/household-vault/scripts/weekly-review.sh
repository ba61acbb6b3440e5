#!/bin/sh
# Context for weekly-review: the family diary.
set -eu
for f in Diary/*.md; do
  echo "=== $f ==="
  tail -n 200 "$f"
done
