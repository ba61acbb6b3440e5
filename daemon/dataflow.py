"""Wiring for the data-flow graph and its findings: one `DataflowState` per open store, refreshed after events.

`Services.dataflow` (`daemon.dataflow_cache`) holds the state, built on first use; `refresh_after_events(svc)` is
what `ingest`, `run-task` and the daemon call after recording events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from handlers.findings import StartCycle, on_finding_detected, refresh_findings
from projections.dataflow import KINDS, FindingSpec, check, glob_exists
from projections.dataflow_state import DataflowState, vault_artifact_reader
from projections.findings import FindingsProjection, open_keys
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from daemon.bootstrap import Services


def dataflow_for(svc: Services) -> DataflowState:
    """The store's graph state, rebuilt from its events on first use and caught up on every call.

    A reloaded vault.yml (the daemon, or a loop after a kept delta, replaces `svc.config`) is wired in first,
    so a postprocessor or a changed `requires` counts from the next check on, not from the next restart.
    """
    cache = svc.dataflow
    state = cache.state
    if state is None:
        state = cache.state = DataflowState.build(
            svc.config, svc.store, svc.store.blobs.get_text, vault_artifact_reader(svc.config.root))
    else:
        if cache.wired is not svc.config:
            state.update_config(svc.config)
        state.catch_up()
    cache.wired = svc.config
    return state


def findings_runner(svc: Services) -> ProjectionRunner:
    """A runner for `rm_findings` alone (shares tracking with any other runner that registers it)."""
    cache = svc.dataflow
    if cache.runner is None:
        cache.runner = ProjectionRunner(svc.store, [FindingsProjection()])
    return cache.runner


def exists_in(svc: Services) -> Callable[[str], bool]:
    return glob_exists(svc.config.root)


def current_findings(svc: Services) -> list[FindingSpec]:
    """What holds now (without recording anything): for drawing the graph."""
    return check(dataflow_for(svc).graph, exists=exists_in(svc))


def refresh_after_events(svc: Services, start_cycle: StartCycle | None = None
                         ) -> tuple[list[FindingSpec], list[tuple[str, str]]]:
    """Fold new events into the graph, record findings that appeared or went away, update rm_findings.

    With `start_cycle`, each newly detected finding goes through `on_finding_detected` (the cycle policy).
    Returns (detected, resolved keys).
    """
    state = dataflow_for(svc)
    runner = findings_runner(svc)
    runner.catch_up()
    with svc.store.engine.connect() as conn:
        keys = open_keys(conn, KINDS)
    detected, resolved = refresh_findings(state.graph, svc.store, keys, exists_in(svc),
                                          last_kept=state.last_kept_cycle)
    if detected or resolved:
        runner.catch_up()
    if start_cycle is not None:
        for f in detected:
            on_finding_detected(f, start_cycle)
    return detected, resolved
