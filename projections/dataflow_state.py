"""The in-memory `DataflowGraph`, rebuilt from the event store at start and kept current as events arrive.

Why not a SQL read model: the checks need per-edge sample windows and glob wiring that live naturally in
networkx, and the graph is small (tasks × outputs). Why the store's events (`EventSource.events_after`, by
position and topic, upcast) and not `rm_runs`: the state then never lags a read model and can rebuild on its own.

Folded events (in notification order): Task.Registered (names the aggregate), Task.Ran (live runs only:
`daemon`, `log`, `cli`; shadow and verification runs are not the pipeline), Task.Scored (scores of live runs),
Task.Changed (a producer's file changed: new sample epoch, consumers watched; a cycle's change also records
which cycle last touched the task) and Task.Reconfigured (a vault.yml edit, except the first naming of a
task first seen in a log).

Output text (for declared-block counts, fact bullets and headings) comes from the blob store through an
injected reader. A rebuild fetches it only for each task's last `TEXT_RUNS` live runs — older runs have left
every window the checks read — so start-up costs O(events) decoding (runs twice: a first pass picks the
runs that need text) plus O(tasks × TEXT_RUNS) blob reads;
each later event costs one blob read and O(degree) graph work.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.aggregates import Task
from domain.config import VaultConfig
from domain.runs import LIVE_SOURCES
from projections.dataflow import HISTORY, SAMPLES, DataflowGraph, count_blocks, text_stats

ReadBlob = Callable[[str], str | None]
ReadArtifact = Callable[[str, str], str | None]  # (vault path, sha256) -> the file's text when it still has that hash

TEXT_RUNS = max(HISTORY, SAMPLES)
PAGE = 2000
UNREGISTERED = "unregistered"  # adapters.eventstore.UNREGISTERED (projections import no adapters)

REGISTERED: Any = Task.Registered  # type: ignore[attr-defined]
RECONFIGURED: Any = Task.Reconfigured  # type: ignore[attr-defined]
RAN: Any = Task.Ran
SCORED: Any = Task.Scored  # type: ignore[attr-defined]
CHANGED: Any = Task.Changed  # type: ignore[attr-defined]
TOPICS = [get_topic(c) for c in (REGISTERED, RECONFIGURED, RAN, SCORED, CHANGED)]
RAN_TOPIC = get_topic(RAN)


class EventSource(Protocol):
    """What the state reads from the event store (`adapters.eventstore.VaultStore`)."""

    def events_after(self, position: int, topics: Sequence[str], limit: int = PAGE) -> list[tuple[int, Any]]: ...


def vault_artifact_reader(root: Path) -> ReadArtifact:
    """Read an artifact from the live vault, but only while its bytes still hash to what the run wrote."""

    def read(path: str, digest: str) -> str | None:
        file = root / path
        try:
            data = file.read_bytes()
        except OSError:
            return None
        return data.decode("utf-8", errors="replace") if hashlib.sha256(data).hexdigest() == digest else None

    return read


class DataflowState:
    """A `DataflowGraph` plus the notification position it has folded up to."""

    def __init__(self, graph: DataflowGraph, store: EventSource, read_blob: ReadBlob,
                 read_artifact: ReadArtifact | None = None) -> None:
        self.graph = graph
        self.store = store
        self.read_blob = read_blob
        self.read_artifact = read_artifact
        self.position = 0
        self.events = 0
        self.names: dict[UUID, str] = {}
        self.config_hashes: dict[UUID, str] = {}
        self.not_live: set[str] = set()  # run ids of shadow / verification runs: their scores are skipped
        self.last_cycle: dict[str, str] = {}  # task -> key of the last cycle whose kept change touched it

    @classmethod
    def build(cls, config: VaultConfig, store: EventSource, read_blob: ReadBlob,
              read_artifact: ReadArtifact | None = None) -> DataflowState:
        state = cls(DataflowGraph.from_config(config), store, read_blob, read_artifact)
        state.catch_up()
        return state

    def update_config(self, config: VaultConfig) -> None:
        """vault.yml was reloaded: rewire, keeping what runs showed."""
        self.graph.update_config(config)

    def last_kept_cycle(self, tasks: Sequence[str]) -> str | None:
        """The cycle that most recently changed a file of one of `tasks` (None when none did)."""
        for task in tasks:
            if task in self.last_cycle:
                return self.last_cycle[task]
        return None

    # ---- folding --------------------------------------------------------------------------------------
    def catch_up(self) -> int:
        """Fold every event after `position`; returns how many were folded."""
        wanted = self._text_runs()
        done = 0
        for position, event in self._events(self.position):
            self.fold(event, with_text=position in wanted)
            self.position = position
            done += 1
        self.events += done
        return done

    def _events(self, after: int, topics: list[str] | None = None) -> Iterator[tuple[int, Any]]:
        start = after
        while True:
            page = self.store.events_after(start, topics or TOPICS, PAGE)
            yield from page
            if len(page) < PAGE:
                return
            start = page[-1][0]

    def _text_runs(self) -> set[int]:
        """Notification ids of each task's last TEXT_RUNS live runs after `position` (a first pass over runs
        only; shadow and verification runs are skipped so a busy cycle cannot push live runs out)."""
        last: dict[Any, deque[int]] = {}
        for position, event in self._events(self.position, [RAN_TOPIC]):
            if event.source in LIVE_SOURCES:
                last.setdefault(event.originator_id, deque(maxlen=TEXT_RUNS)).append(position)
        return {i for ids_ in last.values() for i in ids_}

    def fold(self, event: Any, *, with_text: bool = True) -> None:
        """One event into the graph. O(degree) plus, for a run `with_text`, one blob read."""
        oid = event.originator_id
        if isinstance(event, REGISTERED):
            self.names[oid] = event.name
            self.config_hashes[oid] = event.config_hash
            return
        task = self.names.get(oid)
        if task is None:
            return  # not a task this store named (cannot happen in a well-formed log)
        when = event.timestamp
        if isinstance(event, RECONFIGURED):
            before = self.config_hashes.get(oid)
            self.config_hashes[oid] = event.config_hash
            if before not in (None, UNREGISTERED):
                self.graph.observe_change(task, "vault.yml", when)
        elif isinstance(event, CHANGED):
            self.graph.observe_change(task, event.path, when)
            if event.by == "cycle" and event.cycle_id:
                self.last_cycle[task] = event.cycle_id
        elif isinstance(event, SCORED):
            if event.run_id not in self.not_live:
                self.graph.observe_score(task, event.run_id, float(event.score))
        elif isinstance(event, RAN):
            self._fold_run(task, event, with_text)

    def _fold_run(self, task: str, ev: Any, with_text: bool) -> None:
        if ev.source not in LIVE_SOURCES:
            self.not_live.add(ev.run_id)
            return
        cfg = self.graph.configs.get(task)
        # A logged run names its files but not their hashes: its output's hash stands in, so identical
        # outputs day after day still read as identical artifacts (and different ones as different).
        artifacts = {p: (h or ev.output_hash) for p, h in dict(ev.artifacts).items()}
        blocks = int(ev.blocks)
        words_by: dict[str, int] | None = None
        facts_by: dict[str, int] | None = None
        sections_by: dict[str, tuple[str, ...]] | None = None
        output = self.read_blob(ev.output_hash) if with_text and ev.output_hash else None
        if output is not None:
            if cfg is not None and cfg.expect.blocks is not None and ev.status == "ok":
                blocks = max(blocks, count_blocks(cfg, output))
            words_by, facts_by, sections_by = {}, {}, {}
            for path, digest in dict(ev.artifacts).items():
                text = (self.read_artifact(path, digest) if self.read_artifact and digest else None) or output
                words_by[path], facts_by[path], sections_by[path] = text_stats(text)
        self.graph.observe_run(task, ev.run_id, ev.started, artifacts, int(ev.output_words), int(ev.output_tokens),
                               blocks, ev.status, None, words_by, facts_by_artifact=facts_by,
                               sections_by_artifact=sections_by)

    def stats(self) -> dict[str, Any]:
        """A summary that two states built from the same store agree on (tests compare a restart)."""
        g = self.graph
        return {"position": self.position, "nodes": g.g.number_of_nodes(), "edges": g.g.number_of_edges(),
                "tasks": {n: g.stats(n).as_dict() for n in g.tasks()},
                "edge_stats": {f"{e.producer}->{e.artifact}": g.edge_stats(e.producer, e.artifact).summary()
                               for e in g.task_edges()}}
