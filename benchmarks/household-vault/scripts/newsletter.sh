#!/bin/sh
# Context for newsletter: the children's news and the newest diary pages.
set -eu
news=$(ls -r Kids/news-*.md 2>/dev/null | head -1)
if [ -n "$news" ]; then
  echo "=== $news ==="
  cat "$news"
  echo
fi
for f in $(ls -r Diary/*.md | head -3); do
  echo "=== $f ==="
  cat "$f"
  echo
done
