"""A point in the history, as a person names it: an event position, a date or time, or a time ago.

`--since`, `--until` and `--as-of` all take the same forms:
``#1234`` or ``1234`` (an event position), ``2026-03-18`` / ``2026-03-18T06:30`` (local time unless it says
``Z`` or an offset), ``7d`` / ``36h`` / ``90m`` (that long before now).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_AGO = re.compile(r"^(\d+)\s*(m|min|h|d|w)$", re.IGNORECASE)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Point:
    """Either an event position or a timezone-aware time (exactly one is set)."""

    position: int | None = None
    time: dt.datetime | None = None

    def describe(self) -> str:
        return f"#{self.position}" if self.position is not None else (self.time.isoformat() if self.time else "?")


def parse_point(text: str, now: dt.datetime, *, option: str = "--until") -> Point:
    """Raises ValueError with a one-line fix naming `option` for anything else."""
    raw = text.strip()
    digits = raw[1:] if raw.startswith("#") else raw
    if digits.isdigit() and (raw.startswith("#") or len(digits) < 8):  # 20260318 is a date, not a position
        return Point(position=int(digits))
    m = _AGO.match(raw)
    if m:
        return Point(time=now - dt.timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))}))
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option} {text!r}: not a position, time or age — fix: use #1234, 2026-03-18, "
                         "2026-03-18T06:30Z or 7d / 36h / 90m") from None
    if when.tzinfo is None:
        when = when.astimezone()  # a bare date or time is the user's local time
    return Point(time=when)
