"""`autovault run [--once]`: the long-running service (daemon/service.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.lock import AlreadyRunning


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.service import Options, run_service

    try:
        return run_service(Options(config=Path(args.config), once=args.once, debounce=args.debounce,
                                   stop_grace=args.stop_grace))
    except AlreadyRunning as exc:
        print(f"autovault: {exc}", file=sys.stderr)
        return 1
