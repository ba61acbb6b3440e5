"""Where an open vault keeps its data-flow graph between calls: on `Services`, so two stores never share one and a
closed store takes its graph with it. Built on first use by `daemon.dataflow`, which this module does not import
(the graph's libraries load only for commands that draw or check it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domain.config import VaultConfig
    from projections.dataflow_state import DataflowState
    from projections.runner import ProjectionRunner


@dataclass
class DataflowCache:
    """The graph state and the findings runner of one open store, each built on first use."""

    state: DataflowState | None = None
    runner: ProjectionRunner | None = None
    wired: VaultConfig | None = None  # the config the graph has
