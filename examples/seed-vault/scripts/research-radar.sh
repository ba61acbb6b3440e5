#!/bin/sh
# Context for research-radar: the newest feed items and what the vault already covers.
set -eu
echo "## Feed (newest first)"
head -12 signals/research_feed.txt
echo
echo "## Already covered by notes"
grep -h '^title:' Knowledge/*.md | sed 's/^title: //' | sort | paste -sd ',' - | sed 's/,/, /g'
