"""Text transforms of collector scripts and generated postprocessors. Pure; None = not applicable.

- `resized`: a measured new size (`handlers.collector_measure.Resize`, as evidence carries it) written into the
  script: the limit's number rewritten in the tool's own terms, or a bare `cat FILE` turned into `head|tail -n N`.
- `extract_sections`: the command that selects markdown sections (awk, sed or grep, however its pattern is
  written) replaced by one awk program that passes exactly the named sections, up to the next heading of
  their level or above, from the same files (or stdin).
- `postprocessor`: a POSIX sh postprocessor turning declared blocks into files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from handlers.collector_limits import Limit, set_limit
from handlers.collector_measure import FOR_HEADER, section_selectors
from handlers.shell_syntax import Command, parse, program_of, quote


def resized(text: str, resize: Mapping[str, Any]) -> str | None:
    """The script with one measured resize applied; None when the span no longer holds what was measured."""
    start, stop, new = int(resize["start"]), int(resize["stop"]), int(resize["new"])
    if resize["kind"] == "limit":
        limit = Limit(str(resize["end"]), str(resize["unit"]), int(resize["old"]), start, stop,
                      int(resize.get("offset") or 0))
        if text[start:stop] != str(limit.literal):
            return None
        return set_limit(text, limit, new)
    if resize["kind"] == "loop":
        return _fewer_items(text, start, stop, str(resize["end"]), new)
    commands = parse(text[start:stop]).commands
    if not commands or commands[0].name != "cat":
        return None
    files = [w for w in commands[0].args if not w.value.startswith("-")]
    if not files:
        return None
    cap = f"{resize['end']} -n {new}"
    if len(files) == 1 and (not files[0].dynamic or files[0].raw.startswith('"')):
        return text[:start] + f"{cap} {files[0].raw}" + text[stop:]
    return text[:start] + f"{text[start:stop]} | {cap}" + text[stop:]  # several files: cap them together, as cat did


def _fewer_items(text: str, start: int, stop: int, end: str, keep: int) -> str | None:
    """`for f in GLOB; do` keeping only the last (or first) `keep` items, counted without a program: the glob stays
    the loop's own, so names with spaces and a vault that grows are handled as before."""
    header = text[start:stop]
    m = FOR_HEADER.fullmatch(header.strip())
    if m is None:
        return None
    var, words = m.group("var"), m.group("words")
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start] if not text[line_start:start].strip() else ""
    nxt = text[stop:].split("\n", 2)
    body_indent = re.match(r"[ \t]*", nxt[1] if len(nxt) > 1 and not nxt[0].strip() else "").group(0) or indent + "  "  # type: ignore[union-attr]
    seen, total = f"_seen_{var}", f"_items_{var}"
    if end == "tail":
        prelude = (f"{total}=0; for {var} in {words}; do {total}=$(({total} + 1)); done  # only the newest {keep} "
                   f"fit num_ctx\n{indent}{seen}=0\n{indent}")
        guard = f'{seen}=$(({seen} + 1)); [ "${seen}" -gt $(({total} - {keep})) ] || continue'
    else:
        prelude = f"{seen}=0  # only the first {keep} fit num_ctx\n{indent}"
        guard = f'{seen}=$(({seen} + 1)); [ "${seen}" -le {keep} ] || break'
    return text[:start] + prelude + header + f"\n{body_indent}{guard};" + text[stop:]


def _ere(title: str) -> str:
    return re.sub(r"([.\[\]()*+?{}|^$\\/])", r"\\\1", title).replace("'", ".")


def extract_sections(text: str, titles: Sequence[str], level: int, keep_heading: bool) -> str | None:
    """Replace the section-selecting command with one that passes exactly `titles` (headings of `level`)."""
    found = section_selectors(parse(text))
    if not found or not titles:
        return None
    if len(found) > 1:  # several: the one whose pattern names a wanted title, or excludes by its first letter
        words = {w for t in titles for w in re.findall(r"[a-z0-9]+", t.lower())}
        firsts = {t[:1].lower() for t in titles}

        def aims(cmd: Command) -> bool:
            prog = (program_of(cmd)[0] or cmd.words[0]).value.lower()
            return bool(words & set(re.findall(r"[a-z0-9]+", prog))) or any(f"[^{x}]" in prog for x in firsts)

        found = [cmd for cmd in found if aims(cmd)]
        if len(found) != 1:
            return None
    c = found[0]
    _, files = program_of(c)
    marks = "#" * level
    stop = "|".join("#" * i for i in range(1, level + 1))
    want = "|".join(_ere(t) for t in titles)
    start = "{f=1; print; next}" if keep_heading else "{f=1; next}"
    program = f"/^{marks} ({want})[[:space:]]*#*[[:space:]]*$/{start} /^({stop}) /{{f=0}} f"
    redirects = [f"{op}{r.raw}" if op.endswith("<") and len(op) == 1 else f"{op} {r.raw}" for op, r in c.redirects]
    new = " ".join(["awk", quote(program), *(w.raw for w in files), *redirects])
    return text[:c.start] + new + text[c.end:]


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


__all__ = ["extract_sections", "postprocessor", "resized"]
