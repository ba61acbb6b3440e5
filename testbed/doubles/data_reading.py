"""How the flawed-model double reads the collected data: groups, rows, bullets, what recurs (spec: `flawed_models`).

A small model answers from what the data holds, evenly and literally: it uses every bullet it is given, from
every section the collector let through; it counts a value that recurs across rows only if the rows it got
show the recurrence; a field it is asked for is the column whose header names it. Pure functions.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from testbed.doubles.prompt_anatomy import (
    DAY,
    FILE_LINE,
    GROUP_HEADER,
    HEADING,
    LIST_MARK,
    fields_of,
    is_record,
)

BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?!\[[ xX]\]\s*$)(.+)$")
LABELLED = re.compile(r"^\s*(?:[-*+]\s+)?\*{0,2}([A-Za-z][\w /-]{0,30}?)\*{0,2}\s*:\s+(\S.*)$")
DATE = re.compile("^" + DAY)
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
STOP = frozenset(re.findall(r"\w+", """the and for with that this from your you are was were have has will into each
when what which about them then than they their there these those must should would could write line lines word
words output answer example format section sections note notes prompt below above only also more most today week"""))
FILLER = ("house", "kitchen", "garden", "weekend", "family", "list", "plan", "school", "budget", "repair")


def key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


@dataclass
class Group:
    """A block of the data under a header the collector wrote (`=== a.md ===`, `Note: x.md`)."""

    title: str
    lines: list[str] = field(default_factory=list)

    @property
    def label(self) -> tuple[str, str] | None:
        """("TASK", "knowledge-seeder") for a header like `TASK: knowledge-seeder (a.md, b.md)`."""
        m = re.match(r"^([A-Za-z][\w ]{0,20}):\s*([^(,]+?)\s*(?:\(|,|$)", self.title)
        return (m.group(1), m.group(2)) if m else None


@dataclass
class Data:
    lines: list[str]
    groups: list[Group]
    header: list[str] | None  # the column names of the rows, when the data shows them
    rows: list[list[str]]
    bullets: list[str]
    sections: dict[str, list[str]] = field(default_factory=dict)  # the bullets under each heading of the data

    @property
    def content(self) -> list[str]:
        """What items are drawn from: the bullets, else the rows, else every line that says something."""
        if self.bullets:
            return self.bullets
        if self.rows:
            return [" | ".join(r) for r in self.rows]
        return [ln.strip() for ln in self.lines if ln.strip() and not HEADING.match(ln) and not _header(ln)]

    def spread(self, n: int, start: int = 0) -> list[str]:
        """n items spread evenly over the content, first to last from `start` round (a small model does not pick
        and choose; where it starts varies from day to day). When the bullets sit under several headings, the
        items go round those sections: every section it was given is material to it."""
        parts = [v for v in self.sections.values() if v]
        if len(parts) >= 2 and self.bullets:
            return [parts[i % len(parts)][(start + i // len(parts)) % len(parts[i % len(parts)])] for i in range(n)]
        items = self.content or list(FILLER)
        items = items[start % len(items):] + items[: start % len(items)]
        if n <= 1:
            return items[:1]
        if n >= len(items):
            return [items[i % len(items)] for i in range(n)]
        return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]

    def vocabulary(self) -> list[str]:
        words = re.findall(r"[A-Za-z][A-Za-z'-]{3,}", "\n".join(self.lines))
        seen: dict[str, None] = {}
        for w in words:
            if w.lower() not in STOP:
                seen.setdefault(w.lower(), None)
        return list(seen) or list(FILLER)

    def column(self, slot_words: list[str]) -> int | None:
        """The column whose header names the slot (`<due date>` → `due_date`), if the data has a header."""
        if not self.header:
            return None
        want = key(" ".join(slot_words))
        for i, h in enumerate(self.header):
            hk = key(h)
            if hk and (hk == want or hk in want or want in hk):
                return i
        return None

    def recurring(self, slot_words: list[str]) -> list[tuple[str, int]]:
        """Values that recur across rows, most frequent first, in the column the slot names — else the row's
        last field that is text (not a date, not a number): what a row is about."""
        if not self.rows:
            return []
        col = self.column(slot_words)
        if col is None:
            col = _subject_column(self.rows)
        counts = Counter(r[col].strip() for r in self.rows if col < len(r) and r[col].strip())
        return [(v, n) for v, n in counts.most_common() if n >= 2]


def _header(line: str) -> bool:
    return bool(GROUP_HEADER.match(line) or FILE_LINE.match(line))


def _subject_column(rows: list[list[str]]) -> int:
    width = min(len(r) for r in rows)
    for col in reversed(range(width)):
        values = [r[col] for r in rows]
        if not any(DATE.match(v) or NUMBER.fullmatch(v.replace("€", "").replace("$", "").strip()) for v in values):
            return col
    return width - 1


def read_data(lines: list[str]) -> Data:
    groups: list[Group] = []
    rows: list[list[str]] = []
    header: list[str] | None = None
    bullets: list[str] = []
    pending_header: list[str] | None = None
    sections: dict[str, list[str]] = {}
    heading = ""
    for line in lines:
        if (h := HEADING.match(line)) and not is_record(line):
            heading = key(h.group(2))
            continue
        if _header(line) or (HEADING.match(line) and is_record(line)):
            title = GROUP_HEADER.match(line)
            groups.append(Group(title.group(2) if title else line.strip("#=- ").strip()))
            continue
        if groups:
            groups[-1].lines.append(line)
        fields = fields_of(line)
        if fields is not None and not LIST_MARK.match(line):
            if not any(c.isdigit() for c in line) and all(re.fullmatch(r"[A-Za-z_][\w ]{0,30}", f) for f in fields):
                pending_header = fields  # a header row names the columns of the rows under it
                if header is None:
                    header = fields
                continue
            if pending_header is not None and len(fields) == len(pending_header):
                header = pending_header
            rows.append(fields)
            continue
        m = BULLET.match(line)
        if m and not HEADING.match(line):
            bullets.append(m.group(1).strip())
            sections.setdefault(heading, []).append(m.group(1).strip())
    return Data(lines, groups, header, rows, bullets, sections)


def labelled(text_lines: list[str]) -> dict[str, str]:
    """`Label: value` pairs in some lines (`Payee: Northern Water`), keyed by their normalised label."""
    out: dict[str, str] = {}
    for line in text_lines:
        m = LABELLED.match(line)
        if m:
            out.setdefault(key(m.group(1)), m.group(2).strip())
    return out


__all__ = ["FILLER", "Data", "Group", "key", "labelled", "read_data"]
