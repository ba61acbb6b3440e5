"""The daemon's GPU work: experiments queued by the policies (`handlers.policies`), run one at a time in the
service's worker (the device lease keeps a CLI `autovault train` off the same device), resumed after a crash.

Queueing is deduplicated: a task gets no new experiment while one of its experiments is open, nor one whose
(data, base model, params, seed) an earlier experiment already tried (`handlers.experiments.plan_key`): memory
of what was tried, so a task that stays low does not retrain on the same data every cycle.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from adapters.atomic import sha256_file
from adapters.watch import OwnWrites
from daemon.bootstrap import Services, cycle_deps, experiment_deps
from handlers.apply import apply_root
from handlers.experiments import (
    ExperimentError,
    interrupted,
    plan_experiment,
    plan_key,
    queue,
    queued_event,
    run_experiment,
)
from handlers.experiments_verify import verify_adapter
from projections.experiments import experiment_rows

log = structlog.get_logger("autovault.daemon")


def queue_for(svc: Services, task: str, trigger: str) -> str | None:
    """Queue an experiment on the task's training data unless one is open or the same one was tried."""
    with svc.engine_connect() as conn:
        rows = experiment_rows(conn, task=task)
    if any(r.phase in ("queued", "running") for r in rows):
        return None
    try:
        plan = plan_experiment(svc.config, task, trigger=trigger)
    except ExperimentError as e:
        log.warning("experiment not queued", task=task, error=str(e))
        return None
    tried = {plan_key(r.dataset_hash, r.base_model, r.params, r.seed) for r in rows}
    if plan_key(plan.dataset.hash, plan.base_model, plan.params.as_dict(), plan.seed) in tried:
        return None
    return queue(svc.store, plan)


def resumable(svc: Services) -> list[tuple[str, str]]:
    """(task, key) of experiments a stopped daemon left queued or running, oldest first."""
    deps = experiment_deps(svc)
    with svc.engine_connect() as conn:
        rows = experiment_rows(conn)
    keys = set(interrupted(rows, deps.leases, deps.device))
    return [(r.task, r.key) for r in rows if r.key in keys]


def run_job(svc: Services, key: str, lock: threading.Lock, own: OwnWrites) -> Any:
    """Train (or resume) the experiment, then verify its adapter on the task in a cycle that shares the apply
    lock and notes its writes as the daemon's own."""
    deps = experiment_deps(svc, progress=lambda m: log.info("experiment", detail=m))
    outcome = run_experiment(deps, key, queued_event(svc.store, key))
    log.info("experiment finished", experiment=key, outcome=outcome.outcome, reason=outcome.reason)
    if outcome.outcome != "finished":
        return outcome
    cdeps = cycle_deps(svc, lambda m: log.info("cycle", detail=m))
    cdeps.lock = lock
    root = apply_root(svc.config)
    cdeps.on_written = lambda rel: own.note(root / rel, sha256_file(root / rel))
    return verify_adapter(cdeps, svc.store, deps.experiments, key)


__all__ = ["queue_for", "resumable", "run_job"]
