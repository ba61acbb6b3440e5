#!/bin/sh
# Context for morning-briefing: yesterday's commits, open goals, notes that need attention.
set -eu
latest=$(ls Sessions/*.md | tail -1)
n=$(awk '/^## Commits/{found=1; next} found && /^## /{exit} found && /^- /{n++} END{print n+0}' "$latest")
echo "## Commits ($n in $latest)"
awk '/^## Commits/{found=1; next} found && /^## /{exit} found && /^- /{print}' "$latest"
echo
echo "## Open goals"
grep '^- \[ \]' Goals/goals.md || echo "(none)"
echo
echo "## Notes scoring under 3.0"
awk '/^score:/ && $2 < 3.0 {print "- " FILENAME " (" $2 ")"}' Knowledge/*.md
echo
echo "## Latest research radar"
radar=$(ls Research/*.md 2>/dev/null | tail -1 || true)
if [ -n "$radar" ]; then head -8 "$radar"; else echo "(none yet)"; fi
