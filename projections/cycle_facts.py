"""What the cycles did, as read models: one row per cycle (task, trigger, phase, its last proposal and verdict),
every (delta, baseline) that reached verification, and the latest noise floor per baseline key.

The cycle itself asks these before it verifies (`handlers.cycle`: is this delta, made against this baseline,
verified already? is the noise floor of this baseline known?), the daemon asks which cycles are open, and the
ledger's `--tsv` asks for descriptions. Folding them once (`projections.runner`) instead of scanning every cycle
event on every question keeps those answers O(1) in the length of the history. `CycleFactsQuery` folds what
is new before it answers, so a cycle sees the Verified this process recorded a moment ago.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Column, Float, Index, String, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain.aggregates import FINAL_CYCLE, Cycle
from projections.runner import POSITION, CaughtUpQuery, Projection, metadata, upsert

cycles_table = Table(
    "rm_cycles",
    metadata,
    Column("cycle", String(36), primary_key=True),  # the aggregate id
    Column("key", String, nullable=False),
    Column("task", String, nullable=False),
    Column("mode", String, nullable=False),
    Column("trigger", String, nullable=False),
    Column("started", String(40), nullable=False),  # ISO, UTC
    Column("phase", String(40), nullable=False),
    Column("proposer", String),
    Column("lever", String(40)),
    Column("delta_hash", String(64)),
    Column("baseline", String(64)),
    Column("description", String),
    Column("effect", Float),
    Column("verdict", String(40)),
    Column("reason", String),
    Column("position", POSITION, nullable=False),
    Index("rm_cycles_key_idx", "key"),
    Index("rm_cycles_task_idx", "task", "started"),
)
verified_table = Table(
    "rm_verified_deltas",
    metadata,
    Column("delta_hash", String(64), primary_key=True),
    Column("baseline", String(64), primary_key=True),  # "" for a proposal recorded before baselines were
    Column("cycle", String, nullable=False),  # the key of the first cycle that verified it
    Column("position", POSITION, nullable=False),
)
floors_table = Table(
    "rm_noise_floors",
    metadata,
    Column("noise_key", String, primary_key=True),
    Column("floor", Float, nullable=False),
    Column("position", POSITION, nullable=False),
)

STARTED: Any = Cycle.Started  # type: ignore[attr-defined]
PHASES: dict[Any, str] = {
    Cycle.Diagnosed: "diagnosed",
    Cycle.Proposed: "proposed",
    Cycle.Verified: "verified",
    Cycle.AwaitingApproval: "awaiting_approval",  # type: ignore[attr-defined]
    Cycle.Approved: "approved",  # type: ignore[attr-defined]
    Cycle.Kept: "kept",  # type: ignore[attr-defined]
    Cycle.Discarded: "discarded",  # type: ignore[attr-defined]
    Cycle.Failed: "failed",  # type: ignore[attr-defined]
}


class CycleFactsProjection(Projection):
    name: ClassVar[str] = "cycle_facts"
    tables: ClassVar = (cycles_table, verified_table, floors_table)
    handles: ClassVar = (STARTED, *PHASES)

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        cycle = str(event.originator_id)
        if isinstance(event, STARTED):
            upsert(conn, cycles_table, [{
                "cycle": cycle, "key": event.key, "task": event.task, "mode": event.mode, "trigger": event.trigger,
                "started": event.timestamp.isoformat(), "phase": "started", "position": notification_id}], ["cycle"])
            return
        row: dict[str, Any] = {"phase": PHASES[type(event)], "position": notification_id}
        if isinstance(event, Cycle.Proposed):
            row.update(proposer=event.proposer, lever=event.lever, delta_hash=event.delta_hash,
                       baseline=event.baseline, description=event.description or event.rationale, effect=None,
                       verdict=None, reason="")
        elif isinstance(event, Cycle.Verified):
            detail = event.detail or {}
            row.update(effect=float(event.effect), verdict=event.decision, reason=str(detail.get("reason", "")))
            self._verified(conn, cycle, detail, notification_id)
        elif row["phase"] in ("discarded", "failed"):
            row["reason"] = str(getattr(event, "reason", None) or getattr(event, "error", ""))
        conn.execute(update(cycles_table).where(cycles_table.c.cycle == cycle).values(**row))

    def _verified(self, conn: Connection, cycle: str, detail: dict[str, Any], position: int) -> None:
        c = cycles_table.c
        found = conn.execute(select(c.key, c.delta_hash, c.baseline).where(c.cycle == cycle)).first()
        if found is not None and found.delta_hash:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(insert(verified_table).values(delta_hash=found.delta_hash, baseline=found.baseline or "",
                                                       cycle=found.key, position=position)
                         .on_conflict_do_nothing(index_elements=["delta_hash", "baseline"]))
        if detail.get("noise_key") is not None and detail.get("noise_floor") is not None:
            upsert(conn, floors_table, [{"noise_key": str(detail["noise_key"]), "floor": float(detail["noise_floor"]),
                                         "position": position}], ["noise_key"])


@dataclass(frozen=True)
class CycleRow:
    key: str
    task: str
    mode: str
    trigger: str
    started: dt.datetime
    phase: str
    proposer: str | None
    lever: str | None
    description: str | None
    effect: float | None
    verdict: str | None
    reason: str | None

    @property
    def open(self) -> bool:
        return self.phase not in FINAL_CYCLE


def verified_in(conn: Connection, delta_hash: str, baseline: str | None) -> str | None:
    """The key of the first cycle that verified `delta_hash` made against `baseline` (a proposal recorded before
    baselines were counts for every baseline: it may have been this one)."""
    c = verified_table.c
    found = conn.execute(select(c.cycle).where(c.delta_hash == delta_hash, c.baseline.in_([baseline or "", ""]))
                         .order_by(c.position).limit(1)).scalar()
    return None if found is None else str(found)


def noise_floor(conn: Connection, key: str) -> float | None:
    found = conn.execute(select(floors_table.c.floor).where(floors_table.c.noise_key == key)).scalar()
    return None if found is None else float(found)


def descriptions(conn: Connection) -> dict[str, str]:
    """Cycle key -> the description of its last proposal (the rationale when it had none)."""
    c = cycles_table.c
    rows = conn.execute(select(c.key, c.description).where(c.description.is_not(None))).all()
    return {str(k): str(d) for k, d in rows}


def last_started(conn: Connection, task: str) -> dt.datetime | None:
    found = conn.execute(select(func.max(cycles_table.c.started)).where(cycles_table.c.task == task)).scalar()
    return None if found is None else dt.datetime.fromisoformat(found)


def cycle_rows(conn: Connection, *, task: str | None = None, open_only: bool = False) -> list[CycleRow]:
    """Cycles in the order they started."""
    c = cycles_table.c
    q = select(cycles_table)
    if task is not None:
        q = q.where(c.task == task)
    if open_only:
        q = q.where(c.phase.not_in(FINAL_CYCLE))
    rows = conn.execute(q.order_by(c.started, c.position)).all()
    return [CycleRow(r.key, r.task, r.mode, r.trigger, dt.datetime.fromisoformat(r.started), r.phase, r.proposer,
                     r.lever, r.description, r.effect, r.verdict, r.reason) for r in rows]


class CycleFactsQuery(CaughtUpQuery):
    """The read model behind `handlers.cycle.CycleFacts`: folds what is new (`catch_up`), then answers."""

    def verified_in(self, delta_hash: str, baseline: str | None) -> str | None:
        result: str | None = self._read(lambda conn: verified_in(conn, delta_hash, baseline))
        return result

    def noise_floor(self, key: str) -> float | None:
        result: float | None = self._read(lambda conn: noise_floor(conn, key))
        return result

    def descriptions(self) -> dict[str, str]:
        result: dict[str, str] = self._read(descriptions)
        return result

    def cycles(self, *, task: str | None = None, open_only: bool = False) -> list[CycleRow]:
        result: list[CycleRow] = self._read(lambda conn: cycle_rows(conn, task=task, open_only=open_only))
        return result

    def last_started(self, task: str) -> dt.datetime | None:
        """When the task's latest cycle started (None: never)."""
        result: dt.datetime | None = self._read(lambda conn: last_started(conn, task))
        return result
