#!/bin/sh
# Context for session-reflection: the latest session log, as written.
set -eu
latest=$(ls Sessions/*.md | tail -1)
echo "Session file: $latest"
cat "$latest"
