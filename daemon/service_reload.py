"""The service's side of a vault.yml reload: `daemon.bootstrap.reload` rebuilds what depends on the file; here an
invalid file (or one naming another store or vault) is refused with one log line and the previous config kept,
and a change made while the daemon was down is compared with the text last seen, not with the file as loaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from adapters.config_loader import ConfigError
from daemon.bootstrap import reload
from daemon.notify import Notifier
from domain.config import VaultConfig
from handlers.ports import LoadConfig

if TYPE_CHECKING:
    from daemon.bootstrap import Services

log = structlog.get_logger("autovault.daemon")


def reload_or_keep(svc: Services, notifier: Notifier) -> VaultConfig | None:
    """Reload `svc` from vault.yml; the config it replaced, or None when the file was refused (nothing changed)."""
    old = svc.config
    notifier.reloading()
    try:
        reload(svc)
    except ConfigError as e:
        log.warning(f"vault.yml reload refused, keeping the previous config: {' '.join(str(e).split())}")
        notifier.ready("reload refused: vault.yml invalid; previous config kept")
        return None
    return old


def config_from(text: str, live: VaultConfig, env: Mapping[str, str], load: LoadConfig) -> VaultConfig:
    """The config an older vault.yml text described; unreadable → no tasks (every task counts as changed)."""
    from handlers.verify_delta import load_config_text

    try:
        return load_config_text(text, live, live.root, env, load=load)
    except ConfigError:
        return live.model_copy(update={"tasks": {}})
