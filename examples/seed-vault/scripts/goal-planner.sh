#!/bin/sh
# Context for goal-planner: the goals file and the latest knowledge-judge verdicts.
set -eu
cat Goals/goals.md
latest=$(ls Goals/judged-*.json 2>/dev/null | tail -1 || true)
if [ -n "$latest" ]; then
  echo
  echo "## Latest knowledge-judge verdicts ($latest)"
  cat "$latest"
fi
