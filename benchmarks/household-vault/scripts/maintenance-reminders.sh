#!/bin/bash
# Context for maintenance-reminders: every job with its next due date (GNU date).
set -eu
today=${AUTOVAULT_DATE:-$(date +%F)}
echo "=== House/maintenance.csv (as of $today) ==="
echo "job | last done | due date | days left"
tail -n +2 House/maintenance.csv | while IFS= read -r line; do
  job=$(echo "$line" | cut -d, -f1)
  last=$(echo "$line" | cut -d, -f2)
  every=$(echo "$line" | cut -d, -f3)
  due=$(date -d "$last + $every days" +%F)
  left=$(( ( $(date -d "$due" +%s) - $(date -d "$today" +%s) ) / 86400 ))
  echo "$job | $last | $due | $left"
done | sort -t'|' -k4 -n
