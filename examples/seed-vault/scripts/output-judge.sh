#!/bin/sh
# Context for output-judge: the newest outputs of every task, 80 lines per task.
set -eu
for pair in knowledge-seeder:Knowledge knowledge-judge:Goals/judged goal-planner:Goals/plan \
            knowledge-deepener:Deepened knowledge-spacer:Reviews knowledge-quiz:Quizzes \
            morning-briefing:Briefings research-radar:Research fashion-signals:Reports \
            blog-drafter:Drafts/brief blog-writer:Blog session-reflection:Reflections; do
  task=${pair%%:*}; where=${pair#*:}
  if [ -d "$where" ]; then files=$(ls -r "$where"/* 2>/dev/null | head -8); else files=$(ls -r "$where"-* 2>/dev/null | head -8); fi
  [ -n "$files" ] || continue
  echo "=== TASK: $task ($(echo $files | tr ' ' ',')) ==="
  # shellcheck disable=SC2086
  cat $files | head -80
  echo
done
