"""A task's quality as the `status` table shows it: last score, rolling mean, trend, failing checks.

A plain value: the read model (`projections.quality`) and the quick status read (`daemon.quick_status`) both build
it from a row, so the two answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskQuality:
    task: str
    runs: int
    scored_runs: int
    last_score: float | None
    rolling_mean: float | None
    trend: float | None
    last_run_at: str | None
    last_status: str | None
    last_done_reason: str | None
    failing_checks: tuple[str, ...]
    last_reasons: tuple[str, ...]
    updated_at: str | None
    notification_id: int

    @property
    def direction(self) -> str:
        """'+' improving, '-' worsening, '=' flat, '' not enough scores for two windows."""
        if self.trend is None:
            return ""
        return "+" if self.trend > 1e-9 else "-" if self.trend < -1e-9 else "="


def quality_of(row: Mapping[Any, Any]) -> TaskQuality:
    """A `rm_task_quality` row (its JSON columns decoded) as a value."""
    return TaskQuality(
        task=row["task"], runs=row["runs"], scored_runs=row["scored_runs"], last_score=row["last_score"],
        rolling_mean=row["rolling_mean"], trend=row["trend"], last_run_at=row["last_run_at"],
        last_status=row["last_status"], last_done_reason=row["last_done_reason"],
        failing_checks=tuple(row["failing_checks"]), last_reasons=tuple(row["last_reasons"]),
        updated_at=row["updated_at"], notification_id=row["notification_id"])
