#!/bin/sh
# Context for blog-writer: the newest brief from blog-drafter.
set -eu
brief=$(ls Drafts/brief-*.md | tail -1)
echo "Brief: $brief ($(wc -w < "$brief" | tr -d ' ') words)"
cat "$brief"
