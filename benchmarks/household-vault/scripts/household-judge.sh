#!/bin/sh
# Context for household-judge: the three newest outputs of every task, in full.
set -eu
for pair in meal-plan:Meals/plan school-digest:Kids/digest chore-rota:House/rota garden-journal:Garden/journal \
            bills-digest:Finance/digest maintenance-reminders:House/reminders weekend-ideas:Weekend/ideas \
            grocery-restock:Meals/restock subscription-audit:Finance/subscriptions fix-it-cards:House/cards \
            shopping-list:Meals/shopping weekly-review:Reviews/week newsletter:Newsletter/issue; do
  task=${pair%%:*}; prefix=${pair#*:}
  files=$(ls -r "$prefix"-*.md 2>/dev/null | head -3)
  [ -n "$files" ] || continue
  echo "=== TASK: $task ==="
  # shellcheck disable=SC2086
  cat $files
  echo
done
