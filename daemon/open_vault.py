"""Opening a vault for a command that acts: the whole object graph, with vault.yml on record and the read models
caught up. A command that only reads opens `daemon.read_models.open_read_models` instead."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.bootstrap import Services
    from domain.config import VaultConfig


def read_config(config: str | Path | VaultConfig) -> VaultConfig:
    from adapters.config_loader import load_config

    return load_config(Path(config)) if isinstance(config, str | Path) else config


def open_vault(config: str | Path | VaultConfig) -> Services:
    """`bootstrap()` (interrupted applies settled, orphaned shadows swept), vault.yml and its tasks on record,
    every read model caught up."""
    from daemon.bootstrap import bootstrap, register_tasks

    svc = bootstrap(read_config(config))
    register_tasks(svc.store, svc.config)
    svc.projections.catch_up()
    return svc
