"""When a task runs: the `schedule:` strings of vault.yml, parsed once, asked for the next firing time.

Accepted forms (case-insensitive):
    daily 06:30              every day at 06:30
    weekly mon 06:30         once a week (mon..sun or monday..sunday; a list like mon,thu works too)
    hourly                   at minute 0 of every hour
    every 30m / every 2h     clock-aligned: the minutes of the day divisible by the step, from midnight
    30 6 * * 1-5             5-field cron: minute hour day-of-month month day-of-week
                             (*, a-b, lists, */n and a-b/n steps, jan..dec and sun..sat names, 7 = sunday;
                             when both day fields are restricted either one matching is enough, as in cron)

Times are wall-clock in the timezone of the datetime you pass (naive stays naive). Pure: no clock reads.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

MINUTES_PER_DAY = 24 * 60
# Eight years always contain a 29 February, so any schedule that can fire does so inside this horizon.
_HORIZON_DAYS = 366 * 8 + 1

_WEEKDAYS = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}
_WEEKDAY_LONG = {
    name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_CRON_DOW_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_CRON_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap-year maxima
_ALL_WEEKDAYS = frozenset(range(7))
_ALL_DAYS = frozenset(range(1, 32))
_ALL_MONTHS = frozenset(range(1, 13))
_EVERY = re.compile(r"every\s*(\d+)\s*(m|min|mins|minutes?|h|hours?)")
FORMS = "'daily 06:30', 'weekly mon 06:30', 'hourly', 'every 30m', 'every 2h' or a 5-field cron like '30 6 * * 1-5'"


@dataclass(frozen=True)
class Schedule:
    """A set of wall-clock minutes on a set of days; `next_after` walks forward day by day."""

    spec: str
    times: tuple[int, ...]  # minutes after midnight, sorted, at least one
    weekdays: frozenset[int] = _ALL_WEEKDAYS  # Python numbering: Monday = 0
    days: frozenset[int] = _ALL_DAYS  # day of month
    months: frozenset[int] = _ALL_MONTHS
    either_day: bool = False  # cron: day-of-month and day-of-week both restricted → either matches

    def next_after(self, after: datetime) -> datetime:
        """The first firing time strictly later than `after`, with `after`'s tzinfo."""
        now_minute = after.hour * 60 + after.minute
        start = after.date()
        for offset in range(_HORIZON_DAYS):
            day = start + timedelta(days=offset)
            if not self.fires_on(day):
                continue
            if offset == 0:
                i = bisect_right(self.times, now_minute)
                if i == len(self.times):
                    continue
                minute = self.times[i]
            else:
                minute = self.times[0]
            return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=after.tzinfo)
        raise ValueError(f"schedule {self.spec!r} never fires")  # parse_schedule rules this out

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = day.weekday() in self.weekdays
        return (by_date or by_weekday) if self.either_day else (by_date and by_weekday)

    def __str__(self) -> str:
        return self.spec


def parse_schedule(spec: str) -> Schedule:
    """Parse one schedule string; a ValueError's message is one line that names the bad part."""
    text = " ".join(spec.strip().lower().split())
    words = text.split(" ")
    if text == "hourly":
        return Schedule(spec, tuple(range(0, MINUTES_PER_DAY, 60)))
    if words[0] == "daily":
        if len(words) != 2:
            raise ValueError(f"schedule {spec!r}: 'daily' takes one time, e.g. 'daily 06:30'")
        return Schedule(spec, (_clock(words[1], spec),))
    if words[0] == "weekly":
        if len(words) != 3:
            raise ValueError(f"schedule {spec!r}: 'weekly' takes a day and a time, e.g. 'weekly mon 06:30'")
        return Schedule(spec, (_clock(words[2], spec),), weekdays=_weekdays(words[1], spec))
    if words[0] == "every":
        return _every(text, spec)
    if len(words) == 5:
        return _cron(words, spec)
    raise ValueError(f"schedule {spec!r} is not one of {FORMS}")


def _clock(word: str, spec: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", word)
    if not m:
        raise ValueError(f"schedule {spec!r}: time {word!r} must be HH:MM, e.g. 06:30")
    hour, minute = int(m[1]), int(m[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"schedule {spec!r}: time {word!r} is not a clock time (00:00 to 23:59)")
    return hour * 60 + minute


def _weekdays(word: str, spec: str) -> frozenset[int]:
    out = set()
    for name in word.split(","):
        day = _WEEKDAYS.get(name, _WEEKDAY_LONG.get(name))
        if day is None:
            raise ValueError(f"schedule {spec!r}: day {name!r} must be one of mon, tue, wed, thu, fri, sat, sun")
        out.add(day)
    return frozenset(out)


def _every(text: str, spec: str) -> Schedule:
    m = _EVERY.fullmatch(text)
    if not m:
        raise ValueError(f"schedule {spec!r}: write 'every 30m' or 'every 2h'")
    step = int(m[1]) * (60 if m[2].startswith("h") else 1)
    if not 1 <= step <= MINUTES_PER_DAY:
        raise ValueError(f"schedule {spec!r}: the step must be between 1 minute and 24 hours")
    return Schedule(spec, tuple(range(0, MINUTES_PER_DAY, step)))


def _cron(fields: list[str], spec: str) -> Schedule:
    minutes = _cron_field(fields[0], "minute", 0, 59, {}, spec)
    hours = _cron_field(fields[1], "hour", 0, 23, {}, spec)
    days = _cron_field(fields[2], "day-of-month", 1, 31, {}, spec)
    months = _cron_field(fields[3], "month", 1, 12, _CRON_MONTH_NAMES, spec)
    cron_dow = _cron_field(fields[4], "day-of-week", 0, 7, _CRON_DOW_NAMES, spec)
    weekdays = frozenset((d - 1) % 7 for d in cron_dow)  # cron: 0 and 7 are Sunday; Python: Monday = 0
    dom_star, dow_star = fields[2].startswith("*"), fields[4].startswith("*")
    either = not dom_star and not dow_star
    if not either and not any(d <= _DAYS_IN_MONTH[m - 1] for m in months for d in days):
        raise ValueError(f"schedule {spec!r} never fires: no month in it has those days")
    times = tuple(sorted(h * 60 + m for h in hours for m in minutes))
    return Schedule(
        spec,
        times,
        weekdays=weekdays,
        days=days,
        months=months,
        either_day=either,
    )


def _cron_field(field: str, what: str, lo: int, hi: int, names: dict[str, int], spec: str) -> frozenset[int]:
    out: set[int] = set()
    for part in field.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"schedule {spec!r}: {what} step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if body == "*":
            first, last = lo, hi
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _cron_value(a, what, lo, hi, names, spec), _cron_value(b, what, lo, hi, names, spec)
            if first > last:
                raise ValueError(f"schedule {spec!r}: {what} range {body!r} runs backwards")
        else:
            first = _cron_value(body, what, lo, hi, names, spec)
            last = hi if slash else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _cron_value(word: str, what: str, lo: int, hi: int, names: dict[str, int], spec: str) -> int:
    if word in names:
        return names[word]
    if not word.isdigit() or not lo <= int(word) <= hi:
        raise ValueError(f"schedule {spec!r}: {what} {word!r} must be a number from {lo} to {hi}")
    return int(word)
