"""The read models a bare event store gets: what the benchmarks, the audit and the tests fold."""

from __future__ import annotations

from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import Projection
from projections.runs import RunsProjection


def default_projections(rolling: int = 5) -> list[Projection]:
    return [RunsProjection(), QualityProjection(rolling=rolling), LedgerProjection()]
