#!/bin/sh
# Context for fix-it-cards: the troubleshooting steps of each appliance manual.
set -eu
for f in Manuals/*.md; do
  name=$(sed -n 's/^title: *//p' "$f")
  echo "=== APPLIANCE: $name ($f) ==="
  sed -n '/^## Steps/,/^## [^S]/p' "$f"
done
