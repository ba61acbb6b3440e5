#!/bin/sh
# Context for knowledge-seeder: what the vault already knows, and fresh topics worth a note.
set -eu
echo "## Existing notes"
grep -h '^title:' Knowledge/*.md | sed 's/^title: /- /' | sort
echo
echo "## Seed topics (recent research feed)"
head -6 signals/research_feed.txt | cut -d'|' -f3 | sed 's/^ */- /'
echo
echo "## Seed topics (latest session lessons)"
latest=$(ls Sessions/*.md | tail -1)
awk '/^## Lessons/{found=1; next} found && /^## /{exit} found && NF{print}' "$latest"
