"""`autovault run [--once]`: the long-running service (daemon/service.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.lock import AlreadyRunning


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("run", help="the service: watch the vault, record, react, schedule (systemd Type=notify)")
    c.add_argument("--once", action="store_true",
                   help="catch up (downtime edits, new log lines, due runs, queued work) and exit")
    c.add_argument("--debounce", type=float, default=0.3, metavar="S",
                   help="seconds a changed file must stay quiet before it is read (default 0.3)")
    c.add_argument("--stop-grace", type=float, default=90.0, metavar="S",
                   help="on SIGTERM, seconds to let the step in flight finish (default 90)")


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.service import Options, run_service

    try:
        return run_service(Options(config=Path(args.config), once=args.once, debounce=args.debounce,
                                   stop_grace=args.stop_grace))
    except AlreadyRunning as exc:
        print(f"autovault: {exc}", file=sys.stderr)
        return 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"run": cmd_run}
