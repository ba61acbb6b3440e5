"""Prompt rendering and output-path expansion: pure string work, the same for live runs, shadows and replays.

Placeholders: `{context}` (the collector's stdout), `{date}` (YYYY-MM-DD), `{input:NAME}` or `{NAME}` for a
named input. Anything else in braces is left exactly as written, so a leak like `{var}` or a JSON example
`{"a": 1}` reaches the model and the judge can flag it. Substitution is one pass: text coming from the
context or an input is never itself scanned for placeholders.
"""

from __future__ import annotations

import datetime as dt
import re

PLACEHOLDER = re.compile(r"\{(input:)?([A-Za-z_][\w.\-/*]*)\}")
GLOB_CHARS = frozenset("*?[")


def as_date(date: dt.date | str) -> str:
    return date if isinstance(date, str) else date.isoformat()


def render_prompt(
    template: str,
    context: str,
    date: dt.date | str,
    inputs: dict[str, str] | None = None,
    *,
    append_missing: bool = False,
    append_inputs: bool | None = None,
) -> str:
    """Fill known placeholders; leave unknown `{…}` untouched.

    With `append_missing`, a non-empty context the template never mentions is appended after it (and
    likewise the `inputs` block), so data a task declares always reaches the model. A task with a collector
    reads its inputs itself: the runner passes `append_inputs=False` so declared inputs (which also feed
    the data-flow graph) are not pasted twice and do not blow the context.
    """
    if append_inputs is None:
        append_inputs = append_missing
    named = inputs or {}
    values = {"context": context, "date": as_date(date)}
    used: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        prefixed, name = m.group(1), m.group(2)
        value = named.get(name) if prefixed else values.get(name, named.get(name))
        if value is None:
            return m.group(0)
        used.add(name)
        return value

    out = PLACEHOLDER.sub(fill, template)
    if append_missing:
        if context and "context" not in used:
            out = f"{out.rstrip()}\n\n{context}"
        block = named.get("inputs", "")
        if append_inputs and block and not (used - {"context", "date"}):
            out = f"{out.rstrip()}\n\n{block}"
    return out


def expand_output(pattern: str, date: dt.date | str, name: str) -> str:
    """`Briefings/{date}.md` -> `Briefings/2026-03-18.md`; `{task}`/`{name}` become the task's name."""
    day = as_date(date)
    return pattern.replace("{date}", day).replace("{task}", name).replace("{name}", name)


def is_literal(pattern: str) -> bool:
    """A pattern naming one file (no glob characters), which the runner may write itself."""
    return not (GLOB_CHARS & set(pattern))
