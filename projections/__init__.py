"""Read models folded from events. `default_projections()` is what the daemon and CLI register."""

from __future__ import annotations

from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import Projection, ProjectionRunner
from projections.runs import RunsProjection


def default_projections(rolling: int = 5) -> list[Projection]:
    return [RunsProjection(), QualityProjection(rolling=rolling), LedgerProjection()]


__all__ = ["LedgerProjection", "Projection", "ProjectionRunner", "QualityProjection", "RunsProjection",
           "default_projections"]
