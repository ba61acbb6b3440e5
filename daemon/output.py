"""Tables for people, JSON for machines. rich is imported when a table or a bar is drawn, so `--json` never loads it."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def console() -> Console:
    from rich.console import Console

    # Piped output (logs, CI, `| less`) gets wide rows instead of wrapping at 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def progress_bar() -> Progress:
    """A bar on stderr for long work, shown only on a terminal (never in piped or --json output)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True, disable=not sys.stderr.isatty())


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> None:
    from rich.table import Table

    t = Table(title=title, caption=caption, title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if c is None else str(c) for c in row))
    console().print(t)


def fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def fmt_trend(value: float | None) -> str:
    if value is None:
        return ""
    if value > 0.05:
        return f"↑ {value:+.2f}"
    if value < -0.05:
        return f"↓ {value:+.2f}"
    return "→"
