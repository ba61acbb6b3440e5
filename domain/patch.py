"""Apply a recorded unified diff forwards or backwards: rebuild a file's older text from a newer one.

Diffs on record are `difflib.unified_diff` output (`domain.delta.unified_diff`). Context lines must match
exactly — a diff that does not fit the text is an error, never a guess; callers check the result's hash too.
"""

from __future__ import annotations

import re

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    """The diff does not apply to this text."""


def apply_diff(text: str | None, diff: str, *, reverse: bool = False) -> str | None:
    """`text` with `diff` applied (or un-applied with `reverse`); None when the result is a deleted file."""
    lines = diff.splitlines(keepends=True)
    old_file, new_file = _files(lines)
    if reverse:
        old_file, new_file = new_file, old_file
    if old_file == "/dev/null" and text:
        raise PatchError("the diff creates a file that already has text")
    source = (text or "").splitlines(keepends=True)
    out: list[str] = []
    at = 0  # next source line to copy
    i = 0
    while i < len(lines):
        m = _HUNK.match(lines[i])
        if m is None:
            i += 1
            continue
        old_start = int(m.group(3) if reverse else m.group(1))
        old_count = int((m.group(4) if reverse else m.group(2)) or 1)
        hunk, i = _hunk(lines, i + 1)
        start = old_start if old_count == 0 else old_start - 1  # an empty range names the line it follows
        if start < at or start > len(source):
            raise PatchError(f"hunk at line {old_start} is out of order or past the end")
        out += source[at:start]
        at = start
        for tag, body in hunk:
            if tag == " " or tag == ("+" if reverse else "-"):  # a line the old text must have
                if at >= len(source) or source[at] != body:
                    raise PatchError(f"context does not match at line {at + 1}")
                at += 1
                if tag == " ":
                    out.append(body)
            else:
                out.append(body)
    out += source[at:]
    if new_file == "/dev/null":
        return None
    return "".join(out)


def _files(lines: list[str]) -> tuple[str, str]:
    old = next((ln[4:].strip() for ln in lines if ln.startswith("--- ")), "")
    new = next((ln[4:].strip() for ln in lines if ln.startswith("+++ ")), "")
    return old, new


def _hunk(lines: list[str], i: int) -> tuple[list[tuple[str, str]], int]:
    body: list[tuple[str, str]] = []
    while i < len(lines) and not _HUNK.match(lines[i]) and not lines[i].startswith(("--- ", "+++ ")):
        line = lines[i]
        if line.startswith("\\"):  # "\ No newline at end of file"
            if body:
                tag, prev = body[-1]
                body[-1] = (tag, prev.rstrip("\n"))
        elif line[:1] in (" ", "+", "-"):
            body.append((line[0], line[1:]))
        i += 1
    return body, i
