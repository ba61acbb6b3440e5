#!/bin/sh
# Context for garden-journal: the last two weeks of sensor readings and the three newest journal entries.
set -eu
echo "=== Garden/sensors.csv (the 14 days to ${AUTOVAULT_DATE:-$(date +%F)}) ==="
head -1 Garden/sensors.csv
tail -n 14 Garden/sensors.csv
echo
for f in $(ls -r Garden/log/*.md | head -3); do
  echo "=== $f ==="
  cat "$f"
  echo
done
