"""`autovault` — the command line: parse (`daemon.parser`), then import and run the one command asked for."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from daemon.errors import UserError
from daemon.parser import COMMANDS, QUICK, build_parser

Command = Callable[[Any], int]
Quick = Callable[[Any], int | None]


def command(name: str) -> Command:
    """The implementation of `name`, imported now: only the command that runs pays for its imports."""
    found: Command = _load(COMMANDS[name])
    return found


def _load(where: str) -> Any:
    module, _, function = where.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        answered = _quick(args)
        if answered is not None:
            return answered
        from daemon.logging import configure_logging

        configure_logging(args.log_level)
        return _run(args)
    except UserError as exc:
        print(f"autovault: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autovault: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _failed(exc, args)


def _quick(args: Any) -> int | None:
    """The command's quick answer, before logging is set up or its module loaded; None when it has none."""
    if args.command not in QUICK:
        return None
    quick: Quick = _load(QUICK[args.command])
    return quick(args)


def _run(args: Any) -> int:
    """Run the command; a bad vault.yml, a missing file or an unknown name becomes a `UserError`."""
    try:
        return command(args.command)(args)
    except (FileNotFoundError, KeyError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    except ValueError as exc:
        if _is(exc, "adapters.config_loader", "ConfigError"):
            raise UserError(str(exc)) from None
        raise


def _is(exc: BaseException, module: str, name: str) -> bool:
    """isinstance against a class of a module the command loaded; one it never loaded cannot have raised."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def _failed(exc: Exception, args: Any) -> int:
    import structlog

    from daemon.logging import configure_logging

    configure_logging(args.log_level)  # again, or for the first time when the quick answer failed
    config = args.config
    log = structlog.get_logger("autovault.cli")
    if _is(exc, "sqlalchemy.exc", "SQLAlchemyError"):
        log.debug("store error", exc_info=True)
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"autovault: the event store failed: {first} — fix: check `store:` in {config} (or "
              "$AUTOVAULT_STORE) and that the database is reachable; --log-level debug shows the traceback",
              file=sys.stderr)
        return 1
    # a bug: still one line for the user, the traceback at debug level
    log.debug("internal error", exc_info=True)
    print(f"autovault: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
          "— please report it; --log-level debug shows the traceback", file=sys.stderr)
    return 70


if __name__ == "__main__":
    sys.exit(main())
