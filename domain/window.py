"""The research window: 'HH:MM-HH:MM' of local wall-clock time when cycles may run (null = any time). Pure."""

from __future__ import annotations

import datetime as dt


def _hhmm(text: str) -> dt.time:
    hh, mm = text.strip().split(":")
    return dt.time(int(hh), int(mm))


def in_window(window: str | None, now: dt.datetime) -> bool:
    """Is `now` inside the window? A window that wraps midnight (22:00-04:00) works; None is always open."""
    if window is None:
        return True
    start_text, end_text = window.split("-")
    start, end = _hhmm(start_text), _hhmm(end_text)
    t = now.time().replace(second=0, microsecond=0, tzinfo=None)
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def window_day(window: str, now: dt.datetime) -> dt.date:
    """The date the current (or last) window opened: a window wrapping midnight opened yesterday after 00:00."""
    start = _hhmm(window.split("-")[0])
    return now.date() if now.time().replace(tzinfo=None) >= start else now.date() - dt.timedelta(days=1)
