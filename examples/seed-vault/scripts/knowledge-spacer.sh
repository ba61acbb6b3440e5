#!/bin/bash
# Context for knowledge-spacer: every note's spaced-repetition state and whether it is due.
# AUTOVAULT_DATE (YYYY-MM-DD) pins "today" so replays and verification arms see the same context.
set -eu
today=${AUTOVAULT_DATE:-$(date +%F)}
echo "Today: $today"
echo "note | last_reviewed | interval | ease | reviews | due"
due_count=0
for note in Knowledge/*.md; do
  last_reviewed=$(sed -n 's/^last_reviewed: *//p' "$note")
  sr_interval=$(sed -n 's/^sr_interval: *//p' "$note")
  sr_ease=$(sed -n 's/^sr_ease: *//p' "$note")
  review_count=$(sed -n 's/^review_count: *//p' "$note")
  due=$(date -d "$last_reviewed + $sr_interval days" +%F)
  if [[ "$due" < "$today" || "$due" == "$today" ]]; then
    state="DUE (since $due)"; due_count=$((due_count + 1))
  else
    state="next $due"
  fi
  echo "$(basename "$note" .md) | $last_reviewed | $sr_interval | $sr_ease | $review_count | $state"
done
echo "Due today: $due_count"
