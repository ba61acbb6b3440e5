"""Text transforms of collector scripts and generated postprocessors. Pure; None = not applicable."""

from __future__ import annotations

import re

from handlers.diagnose_static import HEAD_N, SECTION_NEGATION, sed_loops


def scale_head(script: str, factor: float, *, limit: int | None = None, pick: str = "largest",
               file: str | None = None) -> tuple[str, int, int] | None:
    """Multiply one `head -N` by `factor` (→ (new text, old N, new N)); `file` picks the head reading that file,
    else `pick` the largest or smallest N. `limit` caps the new N (e.g. the file's line count)."""
    hits: list[tuple[int, re.Match[str], int]] = []  # (offset in script, match, N)
    offset = 0
    for line in script.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            for m in HEAD_N.finditer(line):
                arg = m.group("rest").strip().split()
                name = arg[0].strip(")\"'") if arg else ""
                if file is None or name == file:
                    hits.append((offset, m, int(m.group("n"))))
        offset += len(line)
    if not hits:
        return None
    choose = max if pick == "largest" else min
    at, m, n = choose(hits, key=lambda h: h[2])
    new_n = max(1, round(n * factor))
    if limit is not None and factor > 1:
        new_n = min(new_n, max(limit, n))
    if new_n == n:
        return None
    start = at + m.start("n")
    return script[:start] + str(new_n) + script[at + m.end("n"):], n, new_n


def explicit_section(script: str, section: str) -> str | None:
    """`awk '/^## [^K]/{exit} {print}'` → `awk '/^## Key Points/{found=1; next} found && /^## /{exit} found{print}'`."""
    m = SECTION_NEGATION.search(script)
    if m is None:
        return None
    marks = m.group("marks")
    title = re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", section.lstrip("#").strip()).replace("'", ".")
    program = f"awk '/^{marks} {title}/{{found=1; next}} found && /^{marks} /{{exit}} found{{print}}'"
    return script[: m.start()] + program + script[m.end():]


def one_awk_pass(script: str) -> str | None:
    """Several `v=$(sed -n 's/^field: *//p' "$note")` per loop item → one awk pass per item that stops at the
    closing front-matter fence and prints shell assignments for `eval` (POSIX sh and bash alike)."""
    loops = sed_loops(script)
    if not loops:
        return None
    lines = script.split("\n")
    for loop in reversed(loops):
        first, last = loop.lines[0] - 1, loop.lines[-1] - 1
        indent = re.match(r"\s*", lines[first]).group(0)  # type: ignore[union-attr]
        rules = []
        for var, fld, value_only in loop.fields:
            strip = f'sub(/^{fld}: */, "", v); ' if value_only else ""
            rules.append(f'{indent}    /^{fld}:/ {{ v = $0; {strip}{var} = (seen_{var}++ ? {var} "\\n" v : v); next }}')
        prints = " ".join(f'print "{var}=" q esc({var}) q;' for var, _, _ in loop.fields)
        block = [
            f"{indent}# one awk pass per item: all fields at once, stopping at the closing front-matter fence",
            f"{indent}eval \"$(awk '",
            f"{indent}    function esc(s) {{ gsub(q, q \"\\\\\" q q, s); return s }}",
            f'{indent}    BEGIN {{ q = sprintf("%c", 39) }}',
            f"{indent}    /^---$/ {{ if (++fences == 2) exit; next }}",
            *rules,
            f"{indent}    END {{ {prints} }}",
            f"{indent}' \"${loop.loop_var}\")\"",
        ]
        lines[first: last + 1] = block
    return "\n".join(lines)


POSTPROC = """#!/bin/sh
# Postprocessor for {task} (written by autovault's rules proposer): model output on stdin; each
# "{pre}<title>{post}" block becomes {dir}/{prefix}<slug>{suffix} (written to a temp file, then renamed, so
# no half-written files). Prints every path it wrote.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" -v pre={pre_q} -v post={post_q} '
  length($0) > length(pre) + length(post) && substr($0, 1, length(pre)) == pre &&
  substr($0, length($0) - length(post) + 1) == post {{
    title = substr($0, length(pre) + 1, length($0) - length(pre) - length(post))
    slug = tolower(title); gsub(/[^a-z0-9]+/, "-", slug); gsub(/^-|-$/, "", slug)
    if (slug == "") slug = "untitled"
    if (out != "") close(out)
    out = dir "/" slug; n++; next
  }}
  out != "" {{ print > out }}
  END {{ if (n == 0) print "no {pre_plain} blocks in the model output" > "/dev/stderr" }}
'
mkdir -p {dir_q}
for f in "$tmp"/*; do
  [ -e "$f" ] || continue
  name={prefix_q}"$(basename "$f")"{suffix_q}
  cp "$f" {dir_q}"/.$name.tmp"
  mv {dir_q}"/.$name.tmp" {dir_q}"/$name"
  echo {dir_q}"/$name"
done
"""


def _sq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def postprocessor(task: str, header: tuple[str, str], output_pattern: str) -> str | None:
    """A POSIX sh postprocessor writing one file per block into `output_pattern` (one `*` in the file name)."""
    folder, _, name = output_pattern.rpartition("/")
    if name.count("*") != 1 or any(c in output_pattern for c in "?[{") or "*" in folder:
        return None
    prefix, _, suffix = name.partition("*")
    pre, post = header
    return POSTPROC.format(task=task, pre=pre, post=post, dir=folder or ".", prefix=prefix, suffix=suffix,
                           pre_q=_sq(pre), post_q=_sq(post), dir_q=_sq(folder or "."), prefix_q=_sq(prefix),
                           suffix_q=_sq(suffix), pre_plain=pre.strip().replace('"', ""))


__all__ = ["explicit_section", "one_awk_pass", "postprocessor", "scale_head"]
