"""Tailing the heartbeat logs: only the complete lines appended since the offset persisted in the store
(`adapters.watch_state`), so a line is ingested once across restarts, a half-written last line waits for its
newline, and a rotated or truncated file is read again from its start."""

from __future__ import annotations

from pathlib import Path

import structlog

from adapters.watch_state import Offset, WatchState
from domain.ingest import IngestedRun, IngestedScore, IngestError, parse_line
from handlers.ingest import IngestReport, IngestStore, ingest_items

log = structlog.get_logger("autovault.daemon")


class LogTail:
    """Each log file's read position, persisted after every ingest."""

    def __init__(self, state: WatchState, store: IngestStore) -> None:
        self.state = state
        self.store = store
        self.offsets = state.offsets()

    def ingest(self, path: Path) -> tuple[list[str], IngestReport]:
        """Ingest the complete lines appended since the stored offset: (the tasks they named, what was recorded).
        A line that does not parse, or a run_id recorded before with other content, is one warning."""
        report = IngestReport()
        try:
            st = path.stat()
        except FileNotFoundError:
            return [], report
        at = self.offsets.get(str(path))
        if at is None or at.inode != st.st_ino or st.st_size < at.offset:
            at = Offset(st.st_ino, 0, 0)
        with path.open("rb") as fh:
            fh.seek(at.offset)
            data = fh.read()
        complete = data[:data.rfind(b"\n") + 1]
        if not complete:
            return [], report
        items: list[IngestedRun | IngestedScore] = []
        line = at.line
        for raw in complete.splitlines():
            line += 1
            try:
                item = parse_line(raw.decode("utf-8", errors="replace"), f"{path}:{line}")
            except IngestError as e:
                log.warning("log line refused", error=str(e))
                continue
            if item is not None:
                items.append(item)
        ingest_items(items, self.store, report)
        for conflict in report.errors:  # a run_id recorded before with other content
            log.warning("log line refused", error=conflict)
        done = Offset(st.st_ino, at.offset + len(complete), line)
        self.state.set_offset(str(path), done)
        self.offsets[str(path)] = done
        return sorted({i.task for i in items}), report
