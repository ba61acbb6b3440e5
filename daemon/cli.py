"""`autovault` — the command line. Parsing only; each command lives in daemon/commands.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

import structlog
from sqlalchemy.exc import SQLAlchemyError

import daemon.commands as commands
import daemon.commands_audit as commands_audit
import daemon.commands_cycle as commands_cycle
import daemon.commands_doctor as commands_doctor
import daemon.commands_gpu as commands_gpu
import daemon.commands_graph as commands_graph
import daemon.commands_run as commands_run
import daemon.commands_service as commands_service
from daemon.logging import configure_logging

log = structlog.get_logger("autovault.cli")

# Each command module adds its subparsers (`add_parsers(sub)`) and maps names to functions (`COMMANDS`).
# Add new command families here, one module each.
COMMAND_MODULES: list[ModuleType] = [commands_cycle, commands_service, commands_graph, commands_run, commands_audit,
                                     commands_doctor, commands_gpu]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autovault", description="Autoresearch for a vault of LLM tasks.")
    p.add_argument("--config", "-c", default=os.environ.get("AUTOVAULT_CONFIG", "vault.yml"),
                   help="the vault.yml (default: $AUTOVAULT_CONFIG or ./vault.yml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--log-level", default=os.environ.get("AUTOVAULT_LOG_LEVEL", "warning"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="validate vault.yml against the schema and the disk")
    c.add_argument("path", nargs="?", help="vault.yml to check (default: --config)")

    c = sub.add_parser("ingest", help="record runs and scores from heartbeat JSONL logs")
    c.add_argument("paths", nargs="+")

    c = sub.add_parser("status", help="tasks, worst first")
    c.add_argument("--as-of", default=None, help="as it was at #POSITION or a time (read models folded privately)")
    c.add_argument("--signatures", action="store_true", help="add each task's failure signatures")

    sub.add_parser("tasks", help="the configured tasks")

    c = sub.add_parser("history", help="a task's runs and scores, newest first")
    c.add_argument("task")
    c.add_argument("--limit", type=int, default=20)
    c.add_argument("--all", action="store_true", help="shadow and verification runs too, not only live ones")
    c.add_argument("--cycle", default=None, help="the runs one cycle verified with (its baseline, candidate, A/A)")

    c = sub.add_parser("run-task", help="run a task once and judge the run")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("task", nargs="?")
    g.add_argument("--all", action="store_true", help="every enabled task, in pipeline order")
    c.add_argument("--shadow", action="store_true", help="run in a shadow copy: live files are never touched")
    c.add_argument("--no-judge", action="store_true")

    c = sub.add_parser("judge", help="judge the latest run of a task again")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("task", nargs="?")
    g.add_argument("--all", action="store_true")

    c = sub.add_parser("signatures", help="named failure patterns in recent runs")
    c.add_argument("task", nargs="?")

    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    _accept_json_anywhere(sub)
    return p


def _accept_json_anywhere(sub: argparse._SubParsersAction) -> None:
    """`autovault status --json` as well as `autovault --json status`; SUPPRESS keeps the global value."""
    for parser in sub.choices.values():
        if not any("--json" in a.option_strings for a in parser._actions):
            parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_json_anywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return commands.dispatch(args, extra=[m.COMMANDS for m in COMMAND_MODULES])
    except commands.UserError as exc:
        print(f"autovault: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autovault: interrupted", file=sys.stderr)
        return 130
    except SQLAlchemyError as exc:
        log.debug("store error", exc_info=True)
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"autovault: the event store failed: {first} — fix: check `store:` in {args.config} (or "
              "$AUTOVAULT_STORE) and that the database is reachable; --log-level debug shows the traceback",
              file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line for the user, the traceback at debug level
        log.debug("internal error", exc_info=True)
        print(f"autovault: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "— please report it; --log-level debug shows the traceback", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
