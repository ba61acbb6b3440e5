"""One experiment per device at a time, across processes: a lease row per device in the store's database.

A CLI `autovault train` and the daemon (or two daemons on one PostgreSQL history) share the table, so only one
of them trains on `cpu` or `cuda:0` at once. A lease is taken by insert-or-compare-and-swap and renewed by
every step summary; it is *stale* — free to take over — when its holder process on this host is gone, or when
it was not renewed for `ttl` seconds (a holder on another host that died). A crashed run leaves a stale lease
and a `running` experiment; whoever takes the lease next resumes it from its checkpoint.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable

from sqlalchemy import Column, DateTime, MetaData, String, Table, and_, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

metadata = MetaData()
leases_table = Table(
    "autovault_gpu_leases",
    metadata,
    Column("device", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:token
    Column("experiment", String(200), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
)
TTL_S = 1800.0  # a lease not renewed for this long is abandoned (a step summary renews it)
FREE = ""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeviceLeases:
    def __init__(self, engine: Engine, *, ttl: float = TTL_S, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine, self.ttl, self.clock = engine, ttl, clock
        metadata.create_all(engine, checkfirst=True)

    def _stale(self, holder: str, renewed: dt.datetime) -> bool:
        if holder == FREE:
            return True
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
            return True
        if renewed.tzinfo is None:  # SQLite hands back naive datetimes
            renewed = renewed.replace(tzinfo=dt.UTC)
        return (self.clock() - renewed).total_seconds() > self.ttl

    def _row(self, conn: Connection, device: str) -> tuple[str, str, dt.datetime] | None:
        t = leases_table.c
        row = conn.execute(select(t.holder, t.experiment, t.renewed_at).where(t.device == device)).first()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    def acquire(self, device: str, holder: str, experiment: str) -> bool:
        """Take the device for `experiment`; False when another live holder has it."""
        t = leases_table.c
        with self.engine.begin() as conn:
            row = self._row(conn, device)
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(leases_table).values(device=device, holder=holder, experiment=experiment,
                                                                 renewed_at=self.clock()))
                    return True
                except IntegrityError:  # another process inserted first
                    row = self._row(conn, device)
                    if row is None:
                        return False
            current, _, renewed = row
            if current != holder and not self._stale(current, renewed):
                return False
            done = conn.execute(update(leases_table).where(and_(t.device == device, t.holder == current))
                                .values(holder=holder, experiment=experiment, renewed_at=self.clock()))
            return done.rowcount == 1

    def renew(self, device: str, holder: str) -> None:
        t = leases_table.c
        with self.engine.begin() as conn:
            conn.execute(update(leases_table).where(and_(t.device == device, t.holder == holder))
                         .values(renewed_at=self.clock()))

    def release(self, device: str, holder: str) -> None:
        t = leases_table.c
        with self.engine.begin() as conn:
            conn.execute(update(leases_table).where(and_(t.device == device, t.holder == holder))
                         .values(holder=FREE, experiment=FREE))

    def held(self, device: str) -> tuple[str, str] | None:
        """(holder, experiment) of a live lease on the device, or None."""
        with self.engine.connect() as conn:
            row = self._row(conn, device)
        if row is None or self._stale(row[0], row[2]):
            return None
        return row[0], row[1]


__all__ = ["TTL_S", "DeviceLeases", "leases_table"]
