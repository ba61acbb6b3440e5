"""When scheduled tasks run, and when research may happen. All time comes from an injected clock.

Semantics (schedule forms: `domain.schedule`):
- A task's next run is the first slot of its schedule strictly after its last run *by the daemon* (the
  newest `Task.Ran` with source `daemon`, read from the store, so it survives restarts), or after the moment
  the daemon first saw the task when it never ran it (no back-fill on first start).
- Missed runs after downtime run ONCE: however many slots passed while the daemon was down, the task is due
  once now, and its next slot is counted from that run.
- A run that failed before anything was recorded still counts as an attempt (in memory), so a broken task
  is not retried in a hot loop: it waits for its next slot.
- The research window (`research.window`, 'HH:MM-HH:MM' local time, may wrap midnight; null = any time)
  gates cycles and verification runs, never scheduled task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from domain.config import VaultConfig
from domain.schedule import Schedule, parse_schedule
from domain.window import in_window

__all__ = ["Clock", "Scheduler", "in_window", "parse_started"]

Clock = Callable[[], datetime]


def parse_started(text: str, tz: datetime) -> datetime | None:
    """A run's ISO start time in `tz`'s timezone (naive times are taken as UTC); None when unreadable."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz.tzinfo) if tz.tzinfo is not None else value.astimezone().replace(tzinfo=None)


class Scheduler:
    """Due tasks from their schedules and last daemon runs. `due(now)` is pure given what it was told."""

    def __init__(self, config: VaultConfig, last_runs: Mapping[str, datetime], first_seen: datetime) -> None:
        self.first_seen = first_seen
        self._last: dict[str, datetime] = dict(last_runs)
        self.schedules: dict[str, Schedule] = {}
        self.reload(config)

    def reload(self, config: VaultConfig) -> None:
        self.schedules = {name: parse_schedule(t.schedule) for name, t in config.tasks.items()
                          if t.schedule and t.enabled}

    def next_run(self, task: str) -> datetime:
        base = self._last.get(task, self.first_seen)
        return self.schedules[task].next_after(base)

    def due(self, now: datetime) -> list[str]:
        """Tasks whose next slot has come, earliest first (each once, however many slots were missed)."""
        ready = [(self.next_run(t), t) for t in self.schedules]
        return [t for at, t in sorted(ready) if at <= now]

    def mark(self, task: str, at: datetime) -> None:
        """A run (or a failed attempt) of `task` began at `at`: its next slot is counted from there."""
        if task not in self._last or at > self._last[task]:
            self._last[task] = at

    def next_due(self) -> datetime | None:
        return min((self.next_run(t) for t in self.schedules), default=None)
