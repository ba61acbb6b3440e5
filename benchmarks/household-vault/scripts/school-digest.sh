#!/bin/sh
# Context for school-digest: the five newest school emails.
set -eu
for f in $(ls -r Kids/school-mail/*.txt | head -5); do
  echo "=== $f ==="
  cat "$f"
  echo
done
