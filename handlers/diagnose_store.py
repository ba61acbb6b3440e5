"""The event store's answers to a diagnosis (`handlers.diagnose_deps`): the quality read model, the data-flow
findings folded from the events, and what earlier cycles tried. One object, built per diagnosis by
`daemon.bootstrap.diagnose_deps` and by the loop, so a reloaded vault.yml is what the findings are checked on.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

from domain.config import VaultConfig
from handlers.candidates import tried_models
from handlers.ports import EventStore
from handlers.tried import tried


class StoreReads:
    """`QualityReads` and `CycleReads` of one store, and its open data-flow findings for one config."""

    def __init__(self, store: EventStore, config: VaultConfig) -> None:
        self.store, self.config = store, config

    def rolling_means(self) -> dict[str, float]:
        from projections.quality import quality_table

        with self.store.engine.connect() as conn:
            return {q.task: q.rolling_mean for q in quality_table(conn) if q.rolling_mean is not None}

    def last_reasons(self, task: str) -> list[str]:
        from projections.quality import task_quality

        with self.store.engine.connect() as conn:
            q = task_quality(conn, task)
        return list(q.last_reasons) if q is not None else []

    def findings(self) -> list[Any]:
        """The findings that hold on the store's events (the graph folded afresh on the first call, nothing
        recorded); later calls of this diagnosis get a copy of the same list."""
        return list(self._findings)

    @cached_property
    def _findings(self) -> tuple[Any, ...]:
        from projections.dataflow import check, glob_exists
        from projections.dataflow_state import DataflowState, vault_artifact_reader

        state = DataflowState.build(self.config, self.store, self.store.blobs.get_text,
                                    vault_artifact_reader(self.config.root))
        return tuple(check(state.graph, exists=glob_exists(self.config.root)))

    def tried(self, task: str, since: dt.datetime | None) -> tuple[dict[str, Any], ...]:
        return tried(self.store, task, since)

    def swapped_models(self, task: str) -> dict[str, str]:
        return tried_models(self.store, task)


__all__ = ["StoreReads"]
