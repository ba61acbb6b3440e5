#!/bin/sh
# Context for fashion-signals: recent signals and how often each one appears.
set -eu
# fit Ollama 4096 token context
signals=$(head -10 signals/signals_list.txt)
echo "## Signals (newest first)"
printf '%s\n' "$signals"
echo
echo "## Counts"
printf '%s\n' "$signals" | cut -d'|' -f3 | sed 's/^ *//' | sort | uniq -c | sort -rn |
  awk '{c = $1; $1 = ""; print "-" $0 " (count=" c ")"}'
