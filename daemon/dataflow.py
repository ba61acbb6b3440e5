"""Wiring for the data-flow graph and its findings: one `DataflowState` per open store, refreshed after events.

`Services` does not hold the state (yet), so it is kept here per store object and built on first use;
`refresh_after_events(svc)` is what `ingest`, `run-task` and the daemon call after recording events.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from adapters.eventstore import VaultStore
from daemon.bootstrap import Services
from domain.config import VaultConfig
from handlers.findings import StartCycle, on_finding_detected, refresh_findings
from projections.dataflow import KINDS, FindingSpec, check, glob_exists
from projections.dataflow_state import DataflowState, vault_artifact_reader
from projections.findings import FindingsProjection, open_keys
from projections.runner import ProjectionRunner

_states: weakref.WeakKeyDictionary[VaultStore, DataflowState] = weakref.WeakKeyDictionary()
_runners: weakref.WeakKeyDictionary[VaultStore, ProjectionRunner] = weakref.WeakKeyDictionary()
_wired: weakref.WeakKeyDictionary[VaultStore, VaultConfig] = weakref.WeakKeyDictionary()  # config the graph has


def dataflow_for(svc: Services) -> DataflowState:
    """The store's graph state, rebuilt from its events on first use and caught up on every call.

    A reloaded vault.yml (the daemon, or a loop after a kept delta, replaces `svc.config`) is wired in first,
    so a postprocessor or a changed `requires` counts from the next check on, not from the next restart.
    """
    state = _states.get(svc.store)
    if state is None:
        state = _states[svc.store] = DataflowState.build(
            svc.config, svc.store, svc.store.blobs.get_text, vault_artifact_reader(svc.config.root))
    else:
        if _wired.get(svc.store) is not svc.config:
            state.update_config(svc.config)
        state.catch_up()
    _wired[svc.store] = svc.config
    return state


def findings_runner(store: VaultStore) -> ProjectionRunner:
    """A runner for `rm_findings` alone (shares tracking with any other runner that registers it)."""
    runner = _runners.get(store)
    if runner is None:
        runner = _runners[store] = ProjectionRunner(store, [FindingsProjection()])
    return runner


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
    runner = findings_runner(svc.store)
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
