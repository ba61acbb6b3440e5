#!/bin/bash
# Context for bills-digest: one row per bill statement.
set -eu
today=${AUTOVAULT_DATE:-$(date +%F)}
until=$(date -d "$today + 21 days" +%F)
echo "=== Finance/statements (due $today to $until) ==="
echo "payee | amount | due date | account"
for f in Finance/statements/*.txt; do
  payee=$(grep -m1 '^Payee:' "$f" | cut -d: -f2- | sed 's/^ *//')
  amount=$(grep -m1 '^Amount:' "$f" | cut -d: -f2- | sed 's/^ *//')
  due=$(grep -m1 '^Due:' "$f" | cut -d: -f2- | sed 's/^ *//')
  account=$(grep -m1 '^Account:' "$f" | cut -d: -f2- | sed 's/^ *//')
  lines=$(wc -l < "$f")
  [ "$lines" -gt 2 ] || continue
  if [ "$due" \< "$today" ] || [ "$due" \> "$until" ]; then continue; fi
  echo "$payee | $amount | $due | $account"
done | sort -t'|' -k3
