"""Recent runs of a task with their texts: what the judge and the signature detectors look at.

Reads the `rm_runs`/`rm_scores` read models and fetches output and context texts from the blob store
through an injected reader, so this module needs no adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from domain.runs import LIVE_SOURCES
from domain.signatures import RunView
from projections.runs import runs_table, scores_table

ReadBlob = Callable[[str], str | None]


class RunHistory:
    def __init__(self, engine: Engine, read_blob: ReadBlob) -> None:
        self.engine = engine
        self.read_blob = read_blob

    def _text(self, digest: str | None) -> str:
        return (self.read_blob(digest) or "") if digest else ""

    def views(self, task: str, limit: int = 10, *, sources: Collection[str] = LIVE_SOURCES) -> list[RunView]:
        """The task's last `limit` live runs (verification runs in shadows left out), newest last."""
        return self._views(task, self._rows(task, limit, sources))

    def cycle_views(self, task: str, cycle: str, arm: str = "cand", limit: int = 10) -> list[RunView]:
        """The runs of one arm of a cycle's verification (`base`, `cand`, `aa`: the label in a verification
        run's id, `handlers.verify`), newest last: a kept candidate's runs show how the current files behave."""
        r = runs_table.c
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(runs_table).where(
                r.task == task, r.cycle_id == cycle, r.run_id.like(f"verify-%-{arm}-%"))
                .order_by(r.notification_id.desc()).limit(limit)).all())
        return self._views(task, rows)

    def _views(self, task: str, rows: list[Any]) -> list[RunView]:
        failing: dict[str, tuple[str, ...]] = {}
        with self.engine.connect() as conn:
            s = scores_table.c
            for sr in conn.execute(select(s.run_id, s.failing).where(s.task == task, s.run_id.in_([x.run_id for x in rows]))
                                   .order_by(s.notification_id)):
                failing[sr.run_id] = tuple(sr.failing)
        return [
            RunView(
                run_id=x.run_id, task=x.task, output=self._text(x.output_hash), done_reason=x.done_reason,
                started=x.started, model=x.model, status=x.status, prompt_tokens=x.prompt_tokens,
                output_tokens=x.tokens, thinking_tokens=x.thinking_tokens, num_ctx=x.num_ctx,
                num_predict=x.num_predict, artifacts=tuple(x.artifacts or ()), context=self._text(x.context_hash),
                failing=failing.get(x.run_id, ()),
            )
            for x in reversed(rows)
        ]

    def _rows(self, task: str, limit: int, sources: Collection[str]) -> list[Any]:
        r = runs_table.c
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(runs_table).where(r.task == task, r.source.in_(sorted(sources))).order_by(r.notification_id.desc()).limit(limit)
            ).all())

    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]:
        """The last `n` live outputs, newest first (for the must-differ-from-previous contract)."""
        if n <= 0:
            return []
        rows = [x for x in self._rows(task, n + 1, LIVE_SOURCES) if x.run_id != exclude][:n]
        return [self._text(x.output_hash) for x in rows]

    def scores(self, task: str) -> dict[str, float]:
        """run_id → the latest score it got."""
        s = scores_table.c
        with self.engine.connect() as conn:
            return {row.run_id: row.score for row in conn.execute(
                select(s.run_id, s.score).where(s.task == task).order_by(s.notification_id))}
