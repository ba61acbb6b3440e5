"""Read models as they were: the projections folded up to an event position, into a private in-memory database.

`replay --until` and `status --as-of` must never touch the live read models (a daemon may be folding them right
now), and must answer exactly what `status` would have answered at that point. So the same projection classes
fold the same events, through the same runner, into a fresh in-memory SQLite database; only the notification
log they read is cut at the position. The database vanishes with the `AsOf`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import UUID

from eventsourcing.application import EventStore
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from projections.runner import EventSource, Projection, ProjectionRunner


class _CutRecorder:
    """The store's recorder, reading notifications no further than `stop`."""

    def __init__(self, recorder: ApplicationRecorder, stop: int) -> None:
        self._recorder = recorder
        self.stop = stop

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> list[Notification]:
        cut = self.stop if stop is None else min(stop, self.stop)
        return list(self._recorder.select_notifications(start, limit, cut, topics, inclusive_of_start=inclusive_of_start))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recorder, name)


@dataclass
class _CutSource:
    """An EventSource over the live store's events, cut at a position, writing read models to `engine`."""

    engine: Engine
    events: EventStore[UUID]
    recorder: Any
    mapper: Mapper[UUID]
    stop: int

    def max_notification_id(self) -> int:
        return self.stop


class AsOf:
    """Projections folded up to `position` (inclusive) in memory. Use as a context manager; `connect()` reads."""

    def __init__(self, store: EventSource, projections: Iterable[Projection], position: int) -> None:
        self.position = min(max(position, 0), store.max_notification_id())
        self.engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        source = _CutSource(self.engine, store.events, _CutRecorder(store.recorder, self.position), store.mapper,
                            self.position)
        self.runner = ProjectionRunner(source, list(projections))
        self.folded = self.runner.catch_up() if self.position > 0 else 0

    def connect(self) -> Connection:
        return self.engine.connect()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AsOf:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
