"""The one place that wires autovault's object graph. Tests call it with doubles for what they replace."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from adapters.backends.registry import ModelRouter, build_backends
from adapters.config_loader import load_config
from adapters.eventstore import VaultStore
from adapters.history_read import EventLog
from adapters.runner import TaskRunner
from adapters.sandbox import policy_of
from adapters.workspace import sweep_orphans
from domain.config import VaultConfig
from domain.ids import sha256_text
from gpu.paths import experiments_dir
from handlers.apply import apply_root
from handlers.apply_journal import RecoveryReport, recover_applies
from handlers.audit import AuditDeps
from handlers.config_history import record_config
from handlers.cycle import CycleDeps, Proposer, floor_cache
from handlers.diagnose import diagnose
from handlers.drift import DriftDeps
from handlers.proposers.chain import chain
from handlers.proposers.llm import proposer as llm_proposer
from handlers.proposers.rules import propose as propose_by_rules
from handlers.tasks import record_verification_run
from handlers.verify import VerifyDeps
from projections.experiments import ExperimentsProjection
from projections.history import RunHistory
from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import ProjectionRunner
from projections.runs import RunsProjection
from projections.score_series import recent_runs, run_views, score_series


@dataclass
class Services:
    config: VaultConfig
    store: VaultStore
    projections: ProjectionRunner
    models: ModelRouter
    runner: TaskRunner
    history: RunHistory
    env: Mapping[str, str] = field(default_factory=dict)
    recovery: RecoveryReport = field(default_factory=RecoveryReport)  # what this start finished or undid

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def engine_connect(self) -> Connection:
        return self.store.engine.connect()

    def read_vault_text(self, rel: str | None) -> str:
        """A vault file's text, or '' when absent: prompts and rubrics for judges and signatures."""
        if not rel:
            return ""
        path = self.config.root / rel
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def task_config_hash(config: VaultConfig, name: str) -> str:
    return sha256_text(config.tasks[name].model_dump_json())


def register_tasks(store: VaultStore, config: VaultConfig) -> int:
    """Registered on first sight, Reconfigured when a task's config changed; returns events recorded."""
    batch = store.batch()
    for name in config.tasks:
        batch.register(name, task_config_hash(config, name))
    recorded = sum(1 for n in batch.commit() if n is not None)
    record_config(store, config, _file_text(config.source), lambda rel: _file_text(config.root / rel) or "" if rel else "")
    return recorded


def _file_text(path: Path) -> str | None:
    """A file's text for the config history (None when it is not there: a config built in memory)."""
    return path.read_text(encoding="utf-8", errors="replace") if path.is_absolute() and path.is_file() else None


def bootstrap(
    config: VaultConfig | Path | str,
    *,
    env: Mapping[str, str] | None = None,
    models: ModelRouter | None = None,
    store_url: str | None = None,
) -> Services:
    env = dict(os.environ if env is None else env)
    cfg = config if isinstance(config, VaultConfig) else load_config(Path(config), env)
    store = VaultStore(store_url or cfg.store)
    # Every command that opens the vault first settles applies a kill interrupted and shadows nobody uses.
    recovery = recover_applies(apply_root(cfg), store)
    recovery.orphans = [str(p) for p in sweep_orphans()]
    projections = ProjectionRunner(store, [
        RunsProjection(),
        QualityProjection(rolling=cfg.research.rolling),
        LedgerProjection(),
        ExperimentsProjection(),
    ])
    router = models or build_backends(cfg.backends, env, experiments=experiments_dir(cfg.source, cfg.store, env))
    runner = TaskRunner(cfg.root, router, sandbox=policy_of(cfg.sandbox))
    history = RunHistory(store.engine, store.blobs.get_text)
    return Services(config=cfg, store=store, projections=projections, models=router, runner=runner,
                    history=history, env=env, recovery=recovery)


def proposers(svc: Services) -> list[tuple[str, Proposer]]:
    """vault.yml's proposers in order: `rules` needs no model (with an LLM listed, its first pass:
    `handlers.proposers.chain`), the others are LLM proposers."""
    return chain(svc.config.proposers, propose_by_rules, lambda name: llm_proposer(name, svc))


def cycle_deps(svc: Services, progress: Callable[[str], None]) -> CycleDeps:
    verify = VerifyDeps(config=svc.config, runner=svc.runner, complete=svc.models.complete, history=svc.history,
                        read_text=svc.read_vault_text, floor_cache=floor_cache(svc.store), env=svc.env,
                        progress=progress, record=lambda run, score, cycle: record_verification_run(
                            svc.store, run, score, cycle))
    return CycleDeps(store=svc.store, verify=verify, diagnose=lambda task: diagnose(task, svc), proposers=proposers(svc))


def audit_deps(svc: Services, progress: Callable[[str], None] = lambda _m: None) -> AuditDeps:
    """An audit's reads (events by position, the runs read model, live files) and the judge for drift rescoring."""
    log, blob = EventLog(svc.store), svc.store.blobs.get_text

    def read(query: Callable[[Connection], Any]) -> Any:
        with svc.engine_connect() as conn:
            return query(conn)

    drift = DriftDeps(history=log, store=svc.store, task=svc.config.tasks.get, complete=svc.models.complete,
                      runs=lambda task, ids: read(lambda c: run_views(c, blob, task, ids)),
                      recent=lambda task, upto, n: read(lambda c: recent_runs(c, task, upto=upto, n=n)),
                      progress=progress)
    return AuditDeps(config=svc.config, history=log, store=svc.store, drift=drift, progress=progress,
                     series=lambda task, after, upto: read(lambda c: score_series(c, task, after=after, upto=upto)),
                     live_text=lambda rel: _file_text(svc.config.root / rel), live_config=lambda: _file_text(svc.config.source))


def experiment_deps(svc: Services, executor: Any = None, *, progress: Callable[[str], None] = lambda _m: None,
                    device: str = "cpu") -> Any:
    """The fine-tuning path's wiring (`handlers.experiments`): the store, the artifacts folder, the device lease
    in the store's database, and an executor (local unless one is given, e.g. `gpu.executors.RayExecutor`)."""
    from gpu.executors import LocalExecutor
    from gpu.lease import DeviceLeases
    from handlers.experiments import ExperimentDeps

    return ExperimentDeps(config=svc.config, store=svc.store, executor=executor or LocalExecutor(),
                          leases=DeviceLeases(svc.store.engine), device=device, progress=progress,
                          experiments=experiments_dir(svc.config.source, svc.config.store, svc.env),
                          threads=svc.config.backends.embedded.threads)


def reloader(svc: Services, progress: Callable[[str], None]) -> Callable[[CycleDeps], CycleDeps]:
    """After a kept vault.yml edit: read the file again into `svc` and rebuild the deps' config-bound parts
    (verify config, runner, history, diagnosis, proposers), keeping the lock and the dedup claims."""

    def reload(deps: CycleDeps) -> CycleDeps:
        svc.config = load_config(svc.config.source, dict(svc.env))
        fresh = cycle_deps(svc, progress)
        return dataclasses.replace(deps, verify=fresh.verify, diagnose=fresh.diagnose, proposers=fresh.proposers)

    return reload
