"""domain.schedule: every accepted form, the next firing time across day, week, month and year edges."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from domain.schedule import parse_schedule

D = datetime


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("daily 06:30", D(2026, 3, 18, 6, 0), D(2026, 3, 18, 6, 30)),
        ("daily 06:30", D(2026, 3, 18, 6, 30), D(2026, 3, 19, 6, 30)),  # strictly after
        ("daily 06:30", D(2026, 3, 18, 6, 30, 0, 1), D(2026, 3, 19, 6, 30)),
        ("daily 06:30", D(2026, 3, 18, 6, 29, 59), D(2026, 3, 18, 6, 30)),
        ("daily 00:00", D(2026, 3, 18, 23, 59), D(2026, 3, 19, 0, 0)),  # across midnight
        ("daily 23:59", D(2026, 12, 31, 23, 59, 30), D(2027, 1, 1, 23, 59)),  # across the year
        ("Daily  7:05", D(2026, 3, 18, 8, 0), D(2026, 3, 19, 7, 5)),  # case and spacing
        ("weekly mon 06:30", D(2026, 3, 18, 12, 0), D(2026, 3, 23, 6, 30)),  # Wed → next Mon
        ("weekly wed 06:30", D(2026, 3, 18, 6, 0), D(2026, 3, 18, 6, 30)),  # same day, later
        ("weekly wed 06:30", D(2026, 3, 18, 7, 0), D(2026, 3, 25, 6, 30)),  # same day, passed
        ("weekly sunday 22:00", D(2026, 3, 18, 0, 0), D(2026, 3, 22, 22, 0)),
        ("weekly mon,thu 09:00", D(2026, 3, 17, 10, 0), D(2026, 3, 19, 9, 0)),
        ("hourly", D(2026, 3, 18, 6, 0), D(2026, 3, 18, 7, 0)),
        ("hourly", D(2026, 3, 18, 23, 10), D(2026, 3, 19, 0, 0)),
        ("every 30m", D(2026, 3, 18, 6, 10), D(2026, 3, 18, 6, 30)),
        ("every 45m", D(2026, 3, 18, 23, 50), D(2026, 3, 19, 0, 0)),  # restarts at midnight
        ("every 2h", D(2026, 3, 18, 5, 0), D(2026, 3, 18, 6, 0)),
        ("every 24h", D(2026, 3, 18, 0, 0), D(2026, 3, 19, 0, 0)),
        ("30 6 * * 1-5", D(2026, 3, 20, 7, 0), D(2026, 3, 23, 6, 30)),  # Fri after → Mon
        ("*/15 * * * *", D(2026, 3, 18, 6, 7), D(2026, 3, 18, 6, 15)),
        ("0 9-17/4 * * *", D(2026, 3, 18, 13, 0), D(2026, 3, 18, 17, 0)),
        ("0 0 1 * *", D(2026, 3, 18, 0, 0), D(2026, 4, 1, 0, 0)),
        ("0 0 29 2 *", D(2026, 3, 1, 0, 0), D(2028, 2, 29, 0, 0)),  # next leap day
        ("0 12 * jan,jul sun", D(2026, 3, 18, 0, 0), D(2026, 7, 5, 12, 0)),
        ("0 0 * * 7", D(2026, 3, 18, 0, 0), D(2026, 3, 22, 0, 0)),  # 7 is Sunday too
        ("0 9 13 * fri", D(2026, 3, 14, 0, 0), D(2026, 3, 20, 9, 0)),  # both restricted: either day
        ("5,35 */6 * * *", D(2026, 3, 18, 6, 5), D(2026, 3, 18, 6, 35)),
    ],
)
def test_next_after(spec: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(spec).next_after(after) == expected


def test_next_after_keeps_the_timezone_and_wall_clock() -> None:
    tz = ZoneInfo("Europe/Berlin")
    got = parse_schedule("daily 06:30").next_after(datetime(2026, 3, 28, 7, 0, tzinfo=tz))  # DST starts 29 March
    assert got == datetime(2026, 3, 29, 6, 30, tzinfo=tz)
    offset = got.utcoffset()
    assert offset is not None and offset.total_seconds() == 7200


def test_consecutive_firings_walk_forward() -> None:
    schedule = parse_schedule("every 20m")
    t = datetime(2026, 3, 18, 23, 0)
    seen = []
    for _ in range(4):
        t = schedule.next_after(t)
        seen.append(t)
    assert seen == [D(2026, 3, 18, 23, 20), D(2026, 3, 18, 23, 40), D(2026, 3, 19, 0, 0), D(2026, 3, 19, 0, 20)]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("daily 25:00", "not a clock time"),
        ("daily 6", "must be HH:MM"),
        ("daily", "'daily' takes one time"),
        ("weekly funday 06:30", "day 'funday'"),
        ("weekly 06:30", "'weekly' takes a day and a time"),
        ("every 0m", "between 1 minute and 24 hours"),
        ("every 25h", "between 1 minute and 24 hours"),
        ("every day", "write 'every 30m'"),
        ("61 * * * *", "minute '61' must be a number from 0 to 59"),
        ("0 24 * * *", "hour '24'"),
        ("0 0 0 * *", "day-of-month '0'"),
        ("0 0 * 13 *", "month '13'"),
        ("0 0 * * 8", "day-of-week '8'"),
        ("*/0 * * * *", "step '0'"),
        ("0 5-2 * * *", "runs backwards"),
        ("0 0 31 2 *", "never fires"),
        ("sometimes", "is not one of"),
        ("", "is not one of"),
    ],
)
def test_bad_schedules_say_what_is_wrong_in_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_schedule(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
