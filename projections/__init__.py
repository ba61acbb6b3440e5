"""Read models folded from events. `default_projections()` is what the daemon and CLI register.

    with VaultStore(url) as store:
        runner = ProjectionRunner(store, default_projections())
        runner.catch_up()                      # fold what is new; cheap and lock-free when nothing is
        with store.engine.connect() as conn:
            rows = quality_table(conn)         # projections.quality; task_history, ledger_rows likewise
"""

from __future__ import annotations

from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import Projection, ProjectionRunner
from projections.runs import RunsProjection


def default_projections(rolling: int = 5) -> list[Projection]:
    return [RunsProjection(), QualityProjection(rolling=rolling), LedgerProjection()]


__all__ = ["LedgerProjection", "Projection", "ProjectionRunner", "QualityProjection", "RunsProjection",
           "default_projections"]
