"""What a quality report draws, per task: scores over time, change markers, regimes, the verdict.

Plain data shared by the handler that assembles it (`handlers.report`) and the adapter that draws it
(`adapters.report_render`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.changes import Change
from projections.score_series import ScorePoint


@dataclass(frozen=True)
class Marker:
    at: dt.datetime
    position: int
    kind: str
    label: str
    culprit: bool = False


@dataclass(frozen=True)
class Regime:
    start: dt.datetime
    end: dt.datetime
    mean: float


@dataclass
class Panel:
    task: str
    points: list[tuple[dt.datetime, float]]
    markers: list[Marker]
    regimes: list[Regime]
    verdict: str
    audit: str | None = None  # key of the recorded audit the verdict comes from (None: computed for the report)
    changes: list[dict[str, Any]] = field(default_factory=list)


def parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def marker_time(change: Change, series: Sequence[ScorePoint]) -> dt.datetime:
    """When to draw a change: when it was recorded — unless that is outside the gap between the runs scored just
    before and just after it in the history (logs ingested late, a history imported), then the gap's middle."""
    at = parse_time(change.at)
    before = [p for p in series if p.position < change.position]
    after = [p for p in series if p.position > change.position]
    lo = parse_time(before[-1].at) if before else None
    hi = parse_time(after[0].at) if after else None
    if lo is not None and hi is not None and hi >= lo and not lo <= at <= hi:
        return lo + (hi - lo) / 2
    if lo is not None and at < lo:
        return lo
    if hi is not None and at > hi:
        return hi
    return at
