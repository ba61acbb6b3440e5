"""`autovault service install [--user]`: write the hardened systemd unit and say what to run next."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.output import print_json
from daemon.service_install import ServiceInstallError, install_unit


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("service", help="install autovault as a systemd service")
    actions = p.add_subparsers(dest="service_action", required=True, metavar="ACTION")
    c = actions.add_parser("install", help="write the unit file (system-wide, or --user)")
    c.add_argument("--user", action="store_true", help="a user unit in ~/.config/systemd/user")
    c.add_argument("--force", action="store_true", help="replace a different existing unit")
    c.add_argument("--service-user", help="account the system unit runs as (default: the vault's owner)")
    c.add_argument("--unit-dir", help="write the unit here instead of the standard folder")


def cmd_service(args: argparse.Namespace) -> int:
    from daemon.commands import UserError

    try:
        result = install_unit(Path(args.config), user=args.user, force=args.force, service_user=args.service_user,
                              unit_dir=Path(args.unit_dir) if args.unit_dir else None)
    except ServiceInstallError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json({"path": str(result.path), "changed": result.changed, "user": result.user,
                    "commands": list(result.commands)})
    else:
        print(result.instructions())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"service": cmd_service}
