"""The one place that wires autovault's object graph. Tests call it with doubles for what they replace."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection

from adapters.backends.registry import ModelRouter, build_backends
from adapters.config_loader import load_config
from adapters.eventstore import VaultStore
from adapters.runner import TaskRunner
from domain.config import VaultConfig
from domain.ids import sha256_text
from handlers.cycle import CycleDeps, Proposer, floor_cache
from handlers.diagnose import diagnose
from handlers.proposers.llm import proposer as llm_proposer
from handlers.proposers.rules import propose as propose_by_rules
from handlers.tasks import record_verification_run
from handlers.verify import VerifyDeps
from projections.history import RunHistory
from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import ProjectionRunner
from projections.runs import RunsProjection


@dataclass
class Services:
    config: VaultConfig
    store: VaultStore
    projections: ProjectionRunner
    models: ModelRouter
    runner: TaskRunner
    history: RunHistory
    env: Mapping[str, str] = field(default_factory=dict)

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
    return sum(1 for n in batch.commit() if n is not None)


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
    projections = ProjectionRunner(store, [
        RunsProjection(),
        QualityProjection(rolling=cfg.research.rolling),
        LedgerProjection(),
    ])
    router = models or build_backends(cfg.backends, env)
    runner = TaskRunner(cfg.root, router)
    history = RunHistory(store.engine, store.blobs.get_text)
    return Services(config=cfg, store=store, projections=projections, models=router, runner=runner,
                    history=history, env=env)


def proposers(svc: Services) -> list[tuple[str, Proposer]]:
    """vault.yml's proposers in order: `rules` needs no model, the others are LLM proposers."""
    return [(name, propose_by_rules if name == "rules" else llm_proposer(name, svc)) for name in svc.config.proposers]


def cycle_deps(svc: Services, progress: Callable[[str], None]) -> CycleDeps:
    verify = VerifyDeps(config=svc.config, runner=svc.runner, complete=svc.models.complete, history=svc.history,
                        read_text=svc.read_vault_text, floor_cache=floor_cache(svc.store), env=svc.env,
                        progress=progress, record=lambda run, score, cycle: record_verification_run(
                            svc.store, run, score, cycle))
    return CycleDeps(store=svc.store, verify=verify, diagnose=lambda task: diagnose(task, svc), proposers=proposers(svc))


def reloader(svc: Services, progress: Callable[[str], None]) -> Callable[[CycleDeps], CycleDeps]:
    """After a kept vault.yml edit: read the file again into `svc` and rebuild the deps' config-bound parts
    (verify config, runner, history, diagnosis, proposers), keeping the lock and the dedup claims."""

    def reload(deps: CycleDeps) -> CycleDeps:
        svc.config = load_config(svc.config.source, dict(svc.env))
        fresh = cycle_deps(svc, progress)
        return dataclasses.replace(deps, verify=fresh.verify, diagnose=fresh.diagnose, proposers=fresh.proposers)

    return reload
