"""The one place that wires autovault's object graph. Tests call it with doubles for what they replace.

`bootstrap()` builds the graph once; `reload()` reads vault.yml again and rebuilds what depends on it — the one
path every long-lived caller (the service, the improvement loop, the benchmarks) takes after vault.yml changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

import adapters.git as git_cli
from adapters.backends.registry import ModelRouter, build_backends
from adapters.config_loader import ConfigError, ConfigProblem, load_config
from adapters.eventstore import VaultStore, prepare_url
from adapters.runner import TaskRunner, utc_now
from adapters.sandbox import confined, hide_environment, policy_of
from adapters.workspace import ShadowWorkspace, sweep_orphans
from daemon.dataflow_cache import DataflowCache
from daemon.read_models import file_text, live_projections, vault_text
from domain.config import VaultConfig
from gpu.paths import experiments_dir
from handlers.apply_journal import RecoveryReport, apply_root, recover_applies
from handlers.config_history import record_config, task_config_hash
from handlers.ports import Outside
from projections.cycle_facts import CycleFactsProjection, CycleFactsQuery
from projections.history import RunHistory
from projections.last_change import LastChangeProjection, LastChangeQuery
from projections.runner import ProjectionRunner

if TYPE_CHECKING:  # the cycle's and the audit's wiring import their handlers when asked for, not on every start
    from handlers.audit import AuditDeps
    from handlers.cycle import CycleDeps, Proposer
    from handlers.diagnose_deps import DiagnoseDeps


def outside() -> Outside:
    """The concrete outside world behind the handlers' ports: shadow copies, the config loader, the git CLI and
    the Landlock + seccomp sandbox."""
    return Outside(workspaces=ShadowWorkspace.create, load_config=load_config, git=git_cli, confine=confined)


@dataclass
class Services:
    config: VaultConfig
    store: VaultStore
    projections: ProjectionRunner
    models: ModelRouter
    runner: TaskRunner
    history: RunHistory
    cycles: CycleFactsQuery  # what all cycles did (dedup, noise floors, open cycles)
    changes: LastChangeQuery  # the last change on record (per path; per task, its own last keep)
    env: Mapping[str, str] = field(default_factory=dict)
    recovery: RecoveryReport = field(default_factory=RecoveryReport)  # what this start finished or undid
    outside: Outside = field(default_factory=outside)
    dataflow: DataflowCache = field(default_factory=DataflowCache)  # the data-flow graph, built on first use
    models_given: bool = False  # the caller passed the router (a test double): a reload keeps it

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


def register_tasks(store: VaultStore, config: VaultConfig) -> int:
    """Registered on first sight, Reconfigured when a task's config changed; returns events recorded."""
    batch = store.batch()
    for name in config.tasks:
        batch.register(name, task_config_hash(config, name))
    recorded = sum(1 for n in batch.commit() if n is not None)
    record_config(store, config, file_text(config.source), lambda rel: vault_text(config, rel))
    return recorded


def bootstrap(
    config: VaultConfig | Path | str,
    *,
    env: Mapping[str, str] | None = None,
    models: ModelRouter | None = None,
    store_url: str | None = None,
) -> Services:
    env = dict(os.environ if env is None else env)
    hide_environment()  # the API keys in our environment stay out of reach of the scripts we run
    cfg = config if isinstance(config, VaultConfig) else load_config(Path(config), env)
    store = VaultStore(store_url or cfg.store)
    ports = outside()
    # Every command that opens the vault first settles applies a kill interrupted and shadows nobody uses.
    recovery = recover_applies(apply_root(cfg), store, ports.git)
    recovery.orphans = [str(p) for p in sweep_orphans()]
    projections = ProjectionRunner(store, live_projections(cfg))
    cycles = CycleFactsQuery(store.engine, lambda: projections.catch_up(names=[CycleFactsProjection.name]))
    changes = LastChangeQuery(store.engine, lambda: projections.catch_up(names=[LastChangeProjection.name]))
    router = models or _router(cfg, env)
    return Services(config=cfg, store=store, projections=projections, models=router, runner=_runner(cfg, router),
                    history=RunHistory(store.engine, store.blobs.get_text), cycles=cycles, changes=changes, env=env,
                    recovery=recovery, outside=ports, models_given=models is not None)


def _router(config: VaultConfig, env: Mapping[str, str]) -> ModelRouter:
    return build_backends(config.backends, env, experiments=experiments_dir(config.source, config.store, env))


def _runner(config: VaultConfig, router: ModelRouter, clock: Callable[[], dt.datetime] = utc_now) -> TaskRunner:
    return TaskRunner(config.root, router, clock=clock, sandbox=policy_of(config.sandbox))


def reload(svc: Services) -> Services:
    """Read vault.yml again and rebuild, in place (every holder of `svc` sees it), what depends on it: the config,
    the model router when `backends` changed (unless the caller gave it) and the task runner (keeping its clock).
    Raises ConfigError and changes nothing when the file does not validate, or names
    another store or vault folder (the open store cannot switch: that needs a restart)."""
    source = svc.config.source.resolve()
    new = load_config(source, dict(svc.env))
    if prepare_url(new.store) != prepare_url(svc.config.store) or new.root.resolve() != svc.config.root.resolve():
        raise ConfigError([ConfigProblem(str(source), None, "", "store or vault changed",
                                         "restart autovault to switch")])
    if new.backends != svc.config.backends and not svc.models_given:
        svc.models = _router(new, svc.env)
    svc.runner = _runner(new, svc.models, svc.runner.clock)
    svc.config = new
    return svc


def proposers(svc: Services) -> list[tuple[str, Proposer]]:
    """vault.yml's proposers in order: `rules` needs no model (with an LLM listed, its first pass:
    `handlers.proposers.chain`), the others are LLM proposers."""
    from handlers.proposers.chain import chain
    from handlers.proposers.llm import proposer as llm_proposer
    from handlers.proposers.rules import propose as propose_by_rules

    return chain(svc.config.proposers, propose_by_rules, lambda name: llm_proposer(name, svc))


def diagnose_deps(svc: Services) -> DiagnoseDeps:
    """What a diagnosis reads, from the services as they are now (a reload replaces config, runner and models)."""
    from handlers.diagnose_deps import DiagnoseDeps
    from handlers.diagnose_store import StoreReads

    reads = StoreReads(svc.store, svc.config)
    return DiagnoseDeps(config=svc.config, history=svc.history, read_vault_text=svc.read_vault_text,
                        workspaces=svc.outside.workspaces, quality=reads,
                        findings=reads.findings, changes=svc.changes, arm_runs=svc.history.cycle_views, cycles=reads,
                        models=svc.models, runner=svc.runner, env=svc.env)


def cycle_deps(svc: Services, progress: Callable[[str], None]) -> CycleDeps:
    from handlers.cycle import CycleDeps
    from handlers.diagnose import diagnose
    from handlers.tasks import record_verification_run
    from handlers.verify_deps import VerifyDeps

    verify = VerifyDeps(config=svc.config, runner=svc.runner, complete=svc.models.complete, history=svc.history,
                        read_text=svc.read_vault_text, floor_cache=lambda _task, key: svc.cycles.noise_floor(key),
                        env=svc.env, workspaces=svc.outside.workspaces, load_config=svc.outside.load_config,
                        confine=svc.outside.confine,
                        progress=progress, record=lambda run, score, cycle: record_verification_run(
                            svc.store, run, score, cycle))
    def reading() -> DiagnoseDeps:  # built per call: a reload replaces config, runner and models
        return diagnose_deps(svc)

    return CycleDeps(store=svc.store, verify=verify, diagnose=lambda task: diagnose(task, reading()),
                     proposers=proposers(svc), reading=reading,
                     facts=svc.cycles, outside=svc.outside)


def audit_deps(svc: Services, progress: Callable[[str], None] = lambda _m: None) -> AuditDeps:
    """An audit's reads (events by position, the runs read model, live files) and the judge for drift rescoring."""
    from adapters.history_read import EventLog
    from handlers.audit import AuditDeps
    from handlers.drift import DriftDeps
    from projections.score_series import recent_runs, run_views, score_series

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
                     live_text=lambda rel: file_text(svc.config.root / rel), live_config=lambda: file_text(svc.config.source))


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
    """The improvement loop's `reload` after a kept vault.yml edit: `reload(svc)`, then the deps' config-bound
    parts rebuilt from it (verify deps, diagnosis, proposers), keeping the lock, the dedup claims and the rest."""

    def again(deps: CycleDeps) -> CycleDeps:
        fresh = cycle_deps(reload(svc), progress)
        return dataclasses.replace(deps, verify=fresh.verify, diagnose=fresh.diagnose, proposers=fresh.proposers)

    return again
