"""The experiments board: one row per fine-tuning experiment (what it trained, where it is, how it scored,
what became of it), plus its loss curve from the `Stepped` summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Column, Float, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection

from domain.aggregates import Experiment
from projections.runner import POSITION, Projection, metadata, upsert

experiments_table = Table(
    "rm_experiments",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("sweep", String(200), nullable=False),
    Column("phase", String(40), nullable=False),
    Column("base_model", String(400), nullable=False),
    Column("dataset_hash", String(64), nullable=False),
    Column("params", String, nullable=False),  # JSON
    Column("seed", Integer, nullable=False),
    Column("trigger", String(200), nullable=False),
    Column("device", String(200)),
    Column("step", Integer, nullable=False),
    Column("loss", Float),  # the last Stepped loss
    Column("metric", Float),  # held-out loss (lower is better)
    Column("metrics", String, nullable=False),  # JSON
    Column("artifacts", String, nullable=False),  # JSON name -> sha256
    Column("duration_s", Float),
    Column("cycle", String(200)),
    Column("effect", Float),
    Column("outcome", String),  # the last reason or error
    Column("queued_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("position", POSITION, nullable=False),  # Queued's notification id
    Index("rm_experiments_task_idx", "task", "position"),
    Index("rm_experiments_sweep_idx", "sweep", "position"),
)

steps_table = Table(
    "rm_experiment_steps",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("loss", Float, nullable=False),
    Column("lr", Float, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
)

E: Any = Experiment
PHASES = {E.Started: "running", E.Finished: "finished", E.Verified: "verified", E.Pruned: "pruned",
          E.Kept: "kept", E.Discarded: "discarded", E.Failed: "failed"}


class ExperimentsProjection(Projection):
    name: ClassVar[str] = "experiments"
    tables: ClassVar = (experiments_table, steps_table)
    handles: ClassVar = (E.Queued, E.Started, E.Stepped, E.Checkpointed, E.Finished, E.Verified, E.Pruned,
                         E.Kept, E.Discarded, E.Failed)

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._steps: list[dict[str, Any]] = []

    def _row(self, conn: Connection, key: str) -> dict[str, Any] | None:
        row = self._rows.get(key)
        if row is None:
            found = conn.execute(select(experiments_table).where(experiments_table.c.key == key)).first()
            if found is None:
                return None
            row = self._rows[key] = dict(found._mapping)
        return row

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        at = event.timestamp.isoformat()
        if isinstance(event, E.Queued):
            self._rows[event.key] = {
                "key": event.key, "task": event.task, "sweep": event.sweep, "phase": "queued",
                "base_model": event.base_model, "dataset_hash": event.dataset_hash,
                "params": json.dumps(event.params, sort_keys=True), "seed": int(event.seed), "trigger": event.trigger,
                "device": None, "step": 0, "loss": None, "metric": None, "metrics": "{}", "artifacts": "{}",
                "duration_s": None, "cycle": None, "effect": None, "outcome": None, "queued_at": at, "updated_at": at,
                "position": notification_id}
            return
        key = str(self.origins(event.originator_id).get("key", event.originator_id))
        row = self._row(conn, key)
        if row is None:
            return
        row["updated_at"] = at
        if type(event) in PHASES:
            row["phase"] = PHASES[type(event)]
        if isinstance(event, E.Started):
            row["device"] = event.device
        elif isinstance(event, E.Stepped):
            row["step"], row["loss"] = int(event.step), float(event.loss)
            self._steps.append({"key": key, "step": int(event.step), "loss": float(event.loss), "lr": float(event.lr),
                                "tokens": int(event.tokens), "seconds": float(event.seconds)})
        elif isinstance(event, E.Finished):
            row.update(metric=float(event.metric), metrics=json.dumps(event.metrics, sort_keys=True, default=str),
                       artifacts=json.dumps(event.artifacts, sort_keys=True), duration_s=float(event.duration_s))
        elif isinstance(event, E.Verified):
            row.update(cycle=event.cycle, effect=event.effect, outcome=event.reason)
        elif isinstance(event, E.Failed):
            row["outcome"] = event.error
        elif isinstance(event, E.Pruned | E.Kept | E.Discarded):
            row["outcome"] = event.reason

    def flush(self, conn: Connection) -> None:
        upsert(conn, experiments_table, list(self._rows.values()), ["key"])
        upsert(conn, steps_table, self._steps, ["key", "step"])
        self.reset()

    def reset(self) -> None:
        self._rows.clear()
        self._steps.clear()


@dataclass(frozen=True)
class ExperimentRow:
    key: str
    task: str
    sweep: str
    phase: str
    base_model: str
    dataset_hash: str
    params: dict[str, Any]
    seed: int
    trigger: str
    device: str | None
    step: int
    loss: float | None
    metric: float | None
    metrics: dict[str, Any]
    artifacts: dict[str, str]
    duration_s: float | None
    cycle: str | None
    effect: float | None
    outcome: str | None
    queued_at: str
    updated_at: str
    losses: list[tuple[int, float]] = field(default_factory=list)


def experiment_rows(conn: Connection, *, task: str | None = None, sweep: str | None = None,
                    key: str | None = None, curves: bool = False) -> list[ExperimentRow]:
    """Experiments in the order they were queued; `curves` adds each one's (step, loss) summaries."""
    c = experiments_table.c
    q = select(experiments_table).order_by(c.position)
    for col, value in ((c.task, task), (c.sweep, sweep), (c.key, key)):
        if value is not None:
            q = q.where(col == value)
    out = []
    for r in conn.execute(q).all():
        m = dict(r._mapping)
        for name in ("params", "metrics", "artifacts"):
            m[name] = json.loads(m[name])
        m.pop("position")
        losses: list[tuple[int, float]] = []
        if curves:
            s = steps_table.c
            losses = [(int(a), float(b)) for a, b in conn.execute(
                select(s.step, s.loss).where(s.key == m["key"]).order_by(s.step)).all()]
        out.append(ExperimentRow(**m, losses=losses))
    return out


__all__ = ["ExperimentRow", "ExperimentsProjection", "experiment_rows", "experiments_table", "steps_table"]
