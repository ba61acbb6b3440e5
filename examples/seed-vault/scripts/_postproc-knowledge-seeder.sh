#!/bin/sh
# Postprocessor for knowledge-seeder: model output on stdin; each "=== NOTE: <title> ===" block
# becomes Knowledge/seed--<slug>.md (written to a temp file, then renamed, so no half-written notes).
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
  /^=== NOTE: .+ ===$/ {
    title = $0; sub(/^=== NOTE: /, "", title); sub(/ ===$/, "", title)
    slug = tolower(title); gsub(/[^a-z0-9]+/, "-", slug); gsub(/^-|-$/, "", slug)
    if (out != "") close(out)
    out = dir "/seed--" slug ".md"; n++; next
  }
  out != "" { print > out }
  END { if (n == 0) print "no === NOTE: blocks in the model output" > "/dev/stderr" }
' 
for f in "$tmp"/seed--*.md; do
  [ -e "$f" ] || continue
  cp "$f" "Knowledge/.$(basename "$f").tmp"
  mv "Knowledge/.$(basename "$f").tmp" "Knowledge/$(basename "$f")"
  echo "Knowledge/$(basename "$f")"
done
