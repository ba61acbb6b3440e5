"""Record runs and scores produced outside autovault (heartbeat JSONL logs), idempotently."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from domain.ingest import IngestedRun, IngestedScore, IngestError, parse_line


class IngestCounts(Protocol):
    @property
    def runs(self) -> int: ...

    @property
    def scores(self) -> int: ...

    @property
    def duplicates(self) -> int: ...  # lines recorded before (or twice in one batch)


class IngestStore(Protocol):
    """What ingest needs from the event store: one save per batch, counting what was new."""

    def ingest_many(self, items: list[IngestedRun | IngestedScore]) -> IngestCounts: ...


@dataclass
class IngestReport:
    files: int = 0
    runs: int = 0
    scores: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


def log_files(path: Path) -> list[Path]:
    """A file, or every `*.jsonl` below a folder, in name order (log files are usually dated)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path}: no such file or folder — fix: pass a heartbeat .jsonl file or its folder")


def parse_file(path: Path, report: IngestReport, start_line: int = 1) -> Iterator[IngestedRun | IngestedScore]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, start=1):
            if number < start_line:
                continue
            try:
                item = parse_line(text, f"{path}:{number}")
            except IngestError as exc:
                report.errors.append(str(exc))
                continue
            if item is not None:
                yield item


def ingest_items(items: Iterable[IngestedRun | IngestedScore], store: IngestStore, report: IngestReport,
                 batch: int = 500) -> None:
    """Runs before scores within a batch, so a score in the same file finds its run."""
    pending: list[IngestedRun | IngestedScore] = []

    def flush() -> None:
        ordered = [i for i in pending if isinstance(i, IngestedRun)] + [i for i in pending if isinstance(i, IngestedScore)]
        counts = store.ingest_many(ordered)
        report.runs += counts.runs
        report.scores += counts.scores
        report.duplicates += counts.duplicates
        pending.clear()

    for item in items:
        pending.append(item)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()


def ingest_path(path: Path, store: IngestStore) -> IngestReport:
    report = IngestReport()
    for file in log_files(path):
        report.files += 1
        ingest_items(parse_file(file, report), store, report)
    return report
