"""Read the history by position: events of chosen aggregates or topics, a time turned into a position.

The library reads one aggregate without positions and the notification log without an originator filter; an
audit needs both — one task's events (an index range on (originator_id, originator_version)) with the
position each holds in the whole history, so they interleave correctly with vault.yml versions and cycles.
Events are mapped by the store's own mapper, so upcasters apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from sqlalchemy import Table, func, select

from adapters.eventstore import VaultStore

PAGE = 2000


class EventLog:
    """Positions and domain events of one store (see the module docstring)."""

    def __init__(self, store: VaultStore) -> None:
        self.store = store
        recorder: Any = store.recorder
        self.table: Table = recorder.events_record_cls.__table__

    def last_position(self) -> int:
        return self.store.max_notification_id()

    def read(self, *, originators: Sequence[UUID] = (), topics: Sequence[str] = (), after: int = 0,
             upto: int | None = None, page: int = PAGE) -> Iterator[tuple[int, Any]]:
        """(position, event) in position order, after `after` and up to `upto` (inclusive), optionally only
        these aggregates and/or topics; read a page at a time."""
        c = self.table.c
        start = after
        while True:
            q = select(c.id, c.originator_id, c.originator_version, c.topic, c.state).where(c.id > start)
            if upto is not None:
                q = q.where(c.id <= upto)
            if originators:
                q = q.where(c.originator_id.in_(list(originators)))
            if topics:
                q = q.where(c.topic.in_(list(topics)))
            with self.store.engine.connect() as conn:
                rows = conn.execute(q.order_by(c.id).limit(page)).all()
            for r in rows:
                state = bytes(r[4]) if isinstance(r[4], memoryview) else r[4]
                yield int(r[0]), self.store.mapper.to_domain_event(Notification(
                    id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3], state=state))
            if len(rows) < page:
                return
            start = int(rows[-1][0])

    def position_at(self, when: dt.datetime) -> int:
        """The last position whose event was made at or before `when` (0: none). Events are made in position
        order, up to the milliseconds two writers may overlap, so a binary search over positions suffices."""
        c = self.table.c
        with self.store.engine.connect() as conn:
            bounds = conn.execute(select(func.min(c.id), func.max(c.id))).first()
        if bounds is None or bounds[0] is None:
            return 0
        first = self._first_at_or_after(int(bounds[0]))
        if first is None or first[1] > when:
            return 0
        lo, hi = first[0], int(bounds[1]) + 1  # the event at lo is at or before `when`; none at or after hi is
        while hi - lo > 1:
            mid = (lo + hi) // 2
            found = self._first_at_or_after(mid)
            if found is None or found[0] >= hi or found[1] > when:
                hi = mid
            else:
                lo = found[0]
        return lo

    def timestamp_of(self, position: int) -> dt.datetime | None:
        """When the event at `position` was made (None: no event there)."""
        found = self._first_at_or_after(position)
        return found[1] if found is not None and found[0] == position else None

    def _first_at_or_after(self, position: int) -> tuple[int, dt.datetime] | None:
        for pos, ev in self.read(after=position - 1, page=1):
            return pos, ev.timestamp
        return None

    def aggregate(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            found: Aggregate = self.store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found

    def blob(self, digest: str) -> str | None:
        return self.store.blobs.get_text(digest)
