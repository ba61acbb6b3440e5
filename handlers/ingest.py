"""Record runs and scores produced outside autovault (heartbeat JSONL logs), idempotently.

A refused line never costs the file: it is reported (file:line, field, fix) and the next line is read. A
line that repeats a recorded run_id (or a score's run and judge) with the same content is a duplicate; with
other content it is a conflict, reported like a refused line — the first record stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from domain.ingest import MAX_LINE_CHARS, IngestedRun, IngestedScore, IngestError, parse_line

Item = IngestedRun | IngestedScore


class IngestCounts(Protocol):
    @property
    def runs(self) -> int: ...

    @property
    def scores(self) -> int: ...

    @property
    def duplicates(self) -> int: ...  # lines recorded before (or twice in one batch)

    @property
    def conflicts(self) -> tuple[int, ...]: ...  # positions of items whose key was recorded with other content


class IngestStore(Protocol):
    """What ingest needs from the event store: one save per batch, counting what was new."""

    def ingest_many(self, items: list[Item]) -> IngestCounts: ...


@dataclass
class IngestReport:
    files: int = 0
    runs: int = 0
    scores: int = 0
    duplicates: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)


def log_files(path: Path) -> list[Path]:
    """A file, or every `*.jsonl` below a folder, in name order (log files are usually dated)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path}: no such file or folder — fix: pass a heartbeat .jsonl file or its folder")


def bounded_lines(fh: BinaryIO, limit: int) -> Iterator[str | None]:
    """Each line as text; None for a line longer than `limit` bytes, which is skipped without being held in
    memory (a log with one endless line must not exhaust it)."""
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(1 << 20)
            yield None
            continue
        yield raw.decode("utf-8", errors="replace")


def parse_file(path: Path, report: IngestReport, start_line: int = 1, limit: int = MAX_LINE_CHARS) -> Iterator[Item]:
    with path.open("rb") as fh:
        for number, text in enumerate(bounded_lines(fh, limit), start=1):
            if number < start_line:
                continue
            where = f"{path}:{number}"
            try:
                if text is None:
                    raise IngestError(f"{where}: line is longer than {limit:,} bytes — fix: keep output and context "
                                      "under 16 MB each")
                item = parse_line(text, where)
            except IngestError as exc:
                report.errors.append(str(exc))
                continue
            if item is not None:
                yield item


def conflict_message(item: Item) -> str:
    key = f"run_id {item.run_id!r:.80}" if isinstance(item, IngestedRun) else \
        f"score of run {item.run_id!r:.80} by judge {item.judge!r:.80}"
    return (f"{item.where or item.task}: {key} was already recorded with other content; the first record is kept — "
            "fix: give this line its own run_id (or remove it if it is a stale copy)")


def ingest_items(items: Iterable[Item], store: IngestStore, report: IngestReport, batch: int = 500) -> None:
    """Runs before scores within a batch, so a score in the same file finds its run."""
    pending: list[Item] = []

    def flush() -> None:
        ordered = [i for i in pending if isinstance(i, IngestedRun)] + [i for i in pending if isinstance(i, IngestedScore)]
        counts = store.ingest_many(ordered)
        report.runs += counts.runs
        report.scores += counts.scores
        report.duplicates += counts.duplicates - len(counts.conflicts)
        report.conflicts += len(counts.conflicts)
        report.errors.extend(conflict_message(ordered[i]) for i in counts.conflicts)
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
