"""structlog, configured once: journald with structured fields under systemd, stderr otherwise.

Secrets never reach a log line: values whose key looks secret are masked before rendering.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(key|token|secret|password|authorization)", re.IGNORECASE)


def under_systemd(env: MutableMapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = "***"
    return event_dict


class JournaldRenderer:
    """Send each event to journald with its fields as upper-case journal fields."""

    def __init__(self) -> None:
        from systemd import journal  # type: ignore[attr-defined]

        self._send = journal.send

    def __call__(self, _: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        priority = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}.get(method, 6)
        message = str(event_dict.pop("event", ""))
        fields = {f"AUTOVAULT_{k.upper()}": str(v) for k, v in event_dict.items() if k.isidentifier()}
        self._send(message, PRIORITY=priority, SYSLOG_IDENTIFIER="autovault", **fields)
        raise structlog.DropEvent


def configure_logging(level: str = "warning", *, journald: bool | None = None, json: bool = False) -> None:
    """Idempotent; the CLI calls it once at start-up."""
    if journald is None:
        journald = under_systemd()
    numeric = getattr(logging, level.upper(), logging.WARNING)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        mask_secrets,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if journald:
        processors.append(JournaldRenderer())
    elif json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,  # reconfigurable (tests capture logs after the CLI ran)
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
