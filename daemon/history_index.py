"""What the daemon asks of the history on every reaction, answered by read models (`projections.cycle_facts`,
`projections.last_change`), each folding only what is new before it answers.

`CycleIndex`: each cycle's task, trigger, start time and phase (open cycles, cooldown, interrupted cycles).
`ChangedIndex`: whether a file's current content is the newest on record for its path (a cycle's apply, or our
own Changed written just before a crash).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from projections.cycle_facts import CycleRow

RESTING = ("awaiting_approval",)  # waits for a person, not for a process


class Cycles(Protocol):
    def cycles(self, *, task: str | None = None, open_only: bool = False) -> list[CycleRow]: ...

    def last_started(self, task: str) -> dt.datetime | None: ...


class Changes(Protocol):
    def recorded(self, path: str, sha256: str | None) -> bool: ...


class CycleIndex:
    def __init__(self, cycles: Cycles) -> None:
        self.query = cycles

    def open_cycles(self) -> list[CycleRow]:
        return self.query.cycles(open_only=True)

    def last_start(self, task: str) -> dt.datetime | None:
        return self.query.last_started(task)

    def interrupted(self) -> list[CycleRow]:
        """Open cycles this daemon's predecessor started (not a CLI's, not one waiting for approval)."""
        return [c for c in self.open_cycles() if c.phase not in RESTING and c.trigger != "cli"]


class ChangedIndex:
    def __init__(self, changes: Changes) -> None:
        self.query = changes

    def recorded(self, path: str, sha256: str | None) -> bool:
        """Is `sha256` the newest content on record for `path`?"""
        return self.query.recorded(path, sha256)
