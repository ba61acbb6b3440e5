"""The environment variables that override vault.yml keys: what `adapters.config_loader` applies, and what a
quick read (`daemon.read_stamp`) counts as an input of the loaded config. Standard library only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

ENV_OVERRIDES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("AUTOVAULT_STORE", ("store",)),
    ("AUTOVAULT_OLLAMA_HOST", ("backends", "ollama", "host")),
    ("OLLAMA_HOST", ("backends", "ollama", "host")),  # only when AUTOVAULT_OLLAMA_HOST is unset
    ("AUTOVAULT_ANTHROPIC_BASE_URL", ("backends", "anthropic", "base_url")),
    ("AUTOVAULT_OPENAI_BASE_URL", ("backends", "openai", "base_url")),
)

DEFAULT_STORE: Final = "sqlite:///.autovault/events.db"


def resolve_store(url: str, base: Path) -> str:
    """Make a relative sqlite path absolute against `base`; other URLs pass unchanged. Creates nothing."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    file, sep, query = url[len(prefix) :].partition("?")
    if file == ":memory:" or file.startswith("/"):
        return url
    return f"{prefix}{os.path.normpath(base / file)}{sep}{query}"
