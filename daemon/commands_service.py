"""`autovault service install [--user]`: write the hardened systemd unit and say what to run next."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.output import print_json
from daemon.service_install import ServiceInstallError, install_unit


def cmd_service(args: argparse.Namespace) -> int:
    from daemon.errors import UserError

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
