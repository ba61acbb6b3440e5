"""Two small in-memory folds of the event log the daemon consults on every reaction, caught up incrementally.

`CycleIndex`: each cycle's task, trigger, start time and phase (open cycles, cooldown, interrupted cycles).
`ChangedIndex`: the newest recorded after-hash of each changed path (whether a file's current content is
already on record — a cycle's apply, or our own Changed written just before a crash).
Both read only their topics, from the last position they saw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from eventsourcing.utils import get_topic

from adapters.eventstore import VaultStore
from domain.aggregates import Cycle, Task

_CYCLE_PHASES: dict[str, str] = {
    get_topic(Cycle.Started): "started",  # type: ignore[attr-defined]
    get_topic(Cycle.Diagnosed): "diagnosed",
    get_topic(Cycle.Proposed): "proposed",
    get_topic(Cycle.Verified): "verified",
    get_topic(Cycle.AwaitingApproval): "awaiting_approval",  # type: ignore[attr-defined]
    get_topic(Cycle.Approved): "approved",  # type: ignore[attr-defined]
    get_topic(Cycle.Kept): "kept",  # type: ignore[attr-defined]
    get_topic(Cycle.Discarded): "discarded",  # type: ignore[attr-defined]
    get_topic(Cycle.Failed): "failed",  # type: ignore[attr-defined]
}
_CHANGED = get_topic(Task.Changed)  # type: ignore[attr-defined]
TERMINAL = ("kept", "discarded", "failed")
RESTING = ("awaiting_approval",)  # waits for a person, not for a process


@dataclass
class CycleInfo:
    key: str
    task: str
    trigger: str
    started: dt.datetime
    phase: str

    @property
    def open(self) -> bool:
        return self.phase not in TERMINAL


class _Fold:
    topics: ClassVar[list[str]]

    def __init__(self, store: VaultStore) -> None:
        self.store = store
        self.position = 0

    def catch_up(self) -> None:
        while True:
            page = self.store.recorder.select_notifications(self.position + 1, 1000, topics=self.topics)
            if not page:
                return
            for n in page:
                try:
                    self.fold(n.topic, self.store.mapper.to_domain_event(n))
                except Exception as e:  # one event written badly (an older version, by hand) must not stop the daemon
                    structlog.get_logger("autovault.daemon").warning(
                        "event skipped by the daemon's index", notification_id=n.id, error=f"{type(e).__name__}: {e}")
            self.position = page[-1].id

    def fold(self, topic: str, event: Any) -> None:
        raise NotImplementedError


class CycleIndex(_Fold):
    topics: ClassVar[list[str]] = list(_CYCLE_PHASES)

    def __init__(self, store: VaultStore) -> None:
        super().__init__(store)
        self.cycles: dict[Any, CycleInfo] = {}

    def fold(self, topic: str, event: Any) -> None:
        phase = _CYCLE_PHASES[topic]
        if phase == "started":
            self.cycles[event.originator_id] = CycleInfo(event.key, event.task, event.trigger, event.timestamp, phase)
        elif event.originator_id in self.cycles:
            self.cycles[event.originator_id].phase = phase

    def open_cycles(self) -> list[CycleInfo]:
        self.catch_up()
        return [c for c in self.cycles.values() if c.open]

    def last_start(self, task: str) -> dt.datetime | None:
        self.catch_up()
        return max((c.started for c in self.cycles.values() if c.task == task), default=None)

    def interrupted(self) -> list[CycleInfo]:
        """Open cycles this daemon's predecessor started (not a CLI's, not one waiting for approval)."""
        return [c for c in self.open_cycles() if c.phase not in RESTING and c.trigger != "cli"]


class ChangedIndex(_Fold):
    topics: ClassVar[list[str]] = [_CHANGED]

    def __init__(self, store: VaultStore) -> None:
        super().__init__(store)
        self.latest: dict[str, str | None] = {}

    def fold(self, topic: str, event: Any) -> None:
        self.latest[event.path] = event.after_hash

    def recorded(self, path: str, sha256: str | None) -> bool:
        """Is `sha256` the newest content on record for `path`?"""
        self.catch_up()
        return path in self.latest and self.latest[path] == sha256
