"""The vault's pipeline as a networkx graph, kept current from vault.yml and from observed runs.

Why a graph: the seed's best fix was between two tasks (a drafter writing 211-token briefs into a writer
that needs 600 words). Nodes are tasks (`task:NAME`) and artifacts (`artifact:PATTERN`); a task points at
the output patterns it declares, and an output pattern points at every task whose input glob could match
the same path (`projections.globs.overlaps`, a symbolic test, so a pipeline that never ran is still wired).
An input glob that no output can satisfy gets its own artifact node marked `produced=False`.

Observations (`observe_run`, `observe_score`, `observe_change`, `set_signatures`) touch only the task's own
node and its edges, so a run event costs O(degree). The checks in `check` read those attributes and return
`FindingSpec`s; `diff_findings` turns two successive check results into Detected / Resolved.

Observed state lives in `TaskStats` (per task) and `EdgeStats` (per producer → output pattern), kept in
dicts keyed by name so a config edit that drops and re-adds a task keeps its history; the graph's node and
edge attributes `stats` point at the same objects.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx

from domain.config import TaskConfig, VaultConfig
from domain.runs import RunResult
from projections import globs

TASK = "task:"
ARTIFACT = "artifact:"
HISTORY = 10  # output word counts, blocks and artifact hashes kept per task
SAMPLES = 10  # writes kept per producer -> output pattern
CHANGE_RUNS = 20  # consumer runs followed after an upstream change; older changes are history


def task_node(name: str) -> str:
    return TASK + name


def artifact_node(pattern: str) -> str:
    return ARTIFACT + pattern


def _when(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class UpstreamChange:
    """A producer's file changed; the consumer's runs after it are watched for a score drop."""

    producer: str
    path: str
    at: str
    baseline: float | None  # consumer's rolling score when the producer changed
    run_ids: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def scores_after(self) -> list[float]:
        return [self.scores[r] for r in self.run_ids if r in self.scores]


@dataclass
class TaskStats:
    """What runs of one task showed: scores, sizes, blocks, misses, changes."""

    rolling: int = 5
    runs: int = 0
    ok_runs: int = 0
    last_run: dict[str, Any] | None = None
    missed: int = 0  # consecutive ok runs that wrote none of the declared outputs
    signatures: tuple[str, ...] = ()
    last_change: dict[str, str] | None = None
    upstream: dict[str, UpstreamChange] = field(default_factory=dict)
    scores: deque[float] = field(default_factory=deque)
    scored: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY * 5))
    words: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    tokens: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    blocks: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    written: deque[frozenset[str]] = field(default_factory=lambda: deque(maxlen=HISTORY))  # artifact hashes

    def __post_init__(self) -> None:
        self.scores = deque(self.scores, maxlen=self.rolling)

    @property
    def score(self) -> float | None:
        """Rolling mean of the last `rolling` scores; None before the first score."""
        return round(sum(self.scores) / len(self.scores), 3) if self.scores else None

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "scores": list(self.scores), "runs": self.runs, "last_run": self.last_run,
                "missed": self.missed, "words": list(self.words), "tokens": list(self.tokens),
                "blocks": list(self.blocks), "signatures": list(self.signatures), "last_change": self.last_change}


@dataclass(frozen=True)
class Sample:
    """One run's write to one output pattern (the smallest file when a run wrote several)."""

    run_id: str
    words: int
    tokens: int
    facts: int | None
    sections: tuple[str, ...] | None
    epoch: int


@dataclass
class EdgeStats:
    """Producer -> output pattern: what the producer actually wrote there."""

    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    writes: int = 0
    missed: int = 0  # consecutive ok runs of the producer that did not write this pattern
    epoch: int = 0  # bumped when the producer changes: older samples describe the old producer

    def recent(self, n: int) -> list[Sample]:
        """The last n samples, from the producer's current version when it has written since changing."""
        current = [s for s in self.samples if s.epoch == self.epoch]
        return (current or list(self.samples))[-n:]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"writes": self.writes, "missed": self.missed}
        for measure in ("words", "tokens", "facts"):
            values = [v for s in self.samples if (v := getattr(s, measure)) is not None]
            if values:
                out[measure] = {"last": values[-1], "mean": round(statistics.fmean(values), 1), "min": min(values)}
        sections = [s.sections for s in self.samples if s.sections is not None]
        if sections:
            out["sections"] = list(sections[-1])
        return out


@dataclass(frozen=True)
class TaskEdge:
    """producer -> consumer through one artifact pattern (the consumer's globs that matched it)."""

    producer: str
    consumer: str
    artifact: str
    globs: tuple[str, ...]


@dataclass(frozen=True)
class ConfigChange:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    edges_added: tuple[TaskEdge, ...] = ()
    edges_removed: tuple[TaskEdge, ...] = ()

    def __bool__(self) -> bool:
        return any((self.added, self.removed, self.changed, self.edges_added, self.edges_removed))


class DataflowGraph:
    """Tasks and artifacts wired by declared globs, annotated with what runs showed."""

    def __init__(self, rolling: int = 5) -> None:
        self.g: nx.DiGraph = nx.DiGraph()
        self.rolling = rolling
        self.configs: dict[str, TaskConfig] = {}
        self._stats: dict[str, TaskStats] = {}
        self._edges: dict[tuple[str, str], EdgeStats] = {}
        self._overlap: dict[tuple[str, str], bool] = {}

    # ---- building -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: VaultConfig) -> DataflowGraph:
        graph = cls(rolling=cfg.research.rolling)
        graph.update_config(cfg)
        return graph

    def update_config(self, cfg: VaultConfig | Mapping[str, TaskConfig]) -> ConfigChange:
        """Rewire for a new vault.yml; observed stats survive. Returns which tasks and task edges changed."""
        tasks = dict(cfg.tasks if isinstance(cfg, VaultConfig) else cfg)
        before_edges = set(self.task_edges())
        old = self.configs
        desired = self._wire(tasks)
        for node in [n for n in self.g if n not in desired]:
            self.g.remove_node(node)
        for node, attrs in desired.nodes(data=True):
            self.g.add_node(node, **attrs)
        for u, v in [(u, v) for u, v in self.g.edges if not desired.has_edge(u, v)]:
            self.g.remove_edge(u, v)
        for u, v, attrs in desired.edges(data=True):
            self.g.add_edge(u, v, **attrs)
        self.configs = tasks
        after_edges = set(self.task_edges())
        return ConfigChange(
            added=tuple(sorted(set(tasks) - set(old))),
            removed=tuple(sorted(set(old) - set(tasks))),
            changed=tuple(sorted(n for n in set(tasks) & set(old) if tasks[n] != old[n])),
            edges_added=tuple(sorted(after_edges - before_edges, key=_edge_key)),
            edges_removed=tuple(sorted(before_edges - after_edges, key=_edge_key)),
        )

    def _wire(self, tasks: Mapping[str, TaskConfig]) -> nx.DiGraph:
        desired = nx.DiGraph()
        produced: dict[str, list[str]] = {}
        for name, t in tasks.items():
            desired.add_node(task_node(name), kind="task", name=name, config=t, stats=self.stats(name))
            for pattern in t.outputs:
                produced.setdefault(pattern, []).append(name)
                desired.add_node(artifact_node(pattern), kind="artifact", pattern=pattern, produced=True)
                desired.add_edge(task_node(name), artifact_node(pattern), kind="writes",
                                 stats=self._edges.setdefault((name, pattern), EdgeStats()))
        by_head: dict[str | None, list[str]] = {}
        for pattern in produced:
            by_head.setdefault(_literal_head(pattern), []).append(pattern)
        for name, t in tasks.items():
            for glob in t.inputs:
                head = _literal_head(glob)
                candidates = produced if head is None else [*by_head.get(head, ()), *by_head.get(None, ())]
                hits = [p for p in candidates if self._overlaps(p, glob)] or [glob]
                for pattern in hits:
                    node = artifact_node(pattern)
                    if node not in desired:
                        desired.add_node(node, kind="artifact", pattern=pattern, produced=False)
                    edge = desired.get_edge_data(node, task_node(name))
                    globs_ = (*edge["globs"], glob) if edge else (glob,)
                    desired.add_edge(node, task_node(name), kind="reads", globs=globs_)
        return desired

    def _overlaps(self, pattern: str, glob: str) -> bool:
        key = (pattern, glob)
        hit = self._overlap.get(key)
        if hit is None:
            hit = self._overlap[key] = globs.overlaps(pattern, glob)
        return hit

    # ---- queries ----------------------------------------------------------------------------------------
    def tasks(self) -> list[str]:
        return sorted(self.configs)

    def stats(self, task: str) -> TaskStats:
        st = self._stats.get(task)
        if st is None:
            st = self._stats[task] = TaskStats(rolling=self.rolling)
        return st

    def edge_stats(self, task: str, pattern: str) -> EdgeStats:
        return self._edges.setdefault((task, pattern), EdgeStats())

    def producers(self, pattern: str) -> list[str]:
        node = artifact_node(pattern)
        return sorted(self.g.nodes[p]["name"] for p in self.g.predecessors(node)) if node in self.g else []

    def consumers(self, pattern: str) -> list[str]:
        node = artifact_node(pattern)
        return sorted(self.g.nodes[c]["name"] for c in self.g.successors(node)) if node in self.g else []

    def task_edges(self) -> list[TaskEdge]:
        """producer -> consumer pairs with the artifact between; shared outputs give one edge per producer."""
        out = []
        for node, attrs in self.g.nodes(data=True):
            if attrs.get("kind") != "artifact":
                continue
            for c in self.g.successors(node):
                globs_ = tuple(self.g.edges[node, c]["globs"])
                for p in self.g.predecessors(node):
                    out.append(TaskEdge(self.g.nodes[p]["name"], self.g.nodes[c]["name"], attrs["pattern"], globs_))
        return sorted(out, key=_edge_key)

    def task_graph(self) -> nx.DiGraph:
        """Tasks only: an edge per producer -> consumer, with the artifacts between as `artifacts`."""
        tg = nx.DiGraph()
        tg.add_nodes_from(self.configs)
        for e in self.task_edges():
            if tg.has_edge(e.producer, e.consumer):
                tg.edges[e.producer, e.consumer]["artifacts"].append(e.artifact)
            else:
                tg.add_edge(e.producer, e.consumer, artifacts=[e.artifact])
        return tg

    def neighbourhood(self, task: str) -> set[str]:
        """Graph nodes upstream and downstream of a task (with the task)."""
        node = task_node(task)
        if node not in self.g:
            known = ", ".join(self.tasks())
            raise KeyError(f"unknown task {task!r}; known tasks: {known}")
        return {node} | nx.ancestors(self.g, node) | nx.descendants(self.g, node)

    # ---- observations -----------------------------------------------------------------------------------
    def observe_run(
        self,
        task: str,
        run_id: str,
        started: str | datetime,
        artifacts: Mapping[str, str],
        output_words: int,
        output_tokens: int,
        blocks: int = 0,
        status: str = "ok",
        score: float | None = None,
        words_by_artifact: Mapping[str, int] | None = None,
        *,
        facts_by_artifact: Mapping[str, int] | None = None,
        sections_by_artifact: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """Fold one run into the task's node and its output edges. O(outputs × artifacts + in-degree)."""
        st = self.stats(task)
        st.runs += 1
        started_s = started.isoformat() if isinstance(started, datetime) else started
        st.last_run = {"run_id": run_id, "started": started_s, "status": status, "words": output_words,
                       "tokens": output_tokens, "blocks": blocks, "artifacts": sorted(artifacts)}
        st.words.append(output_words)
        st.tokens.append(output_tokens)
        st.blocks.append(blocks)
        when = _when(started)
        for rec in list(st.upstream.values()):
            at = _when(rec.at)
            if when is None or at is None or when >= at:
                rec.run_ids.append(run_id)
                if len(rec.run_ids) > CHANGE_RUNS:
                    del st.upstream[rec.producer]
        if score is not None:
            self.observe_score(task, run_id, score)
        if status != "ok":
            return  # a crash is its own signature; it says nothing about a missing writer
        st.ok_runs += 1
        st.written.append(frozenset(artifacts.values()))
        cfg = self.configs.get(task)
        if cfg is None or not cfg.outputs:
            return
        wrote_any = False
        for pattern in cfg.outputs:
            rx = globs.compile_glob(pattern)
            paths = [p for p in artifacts if rx.match(p.removeprefix("./"))]
            es = self.edge_stats(task, pattern)
            if not paths:
                es.missed += 1
                continue
            wrote_any = True
            es.missed = 0
            es.writes += 1
            es.samples.append(self._sample(run_id, paths, output_words, output_tokens, es.epoch,
                                           words_by_artifact, facts_by_artifact, sections_by_artifact))
        st.missed = 0 if wrote_any else st.missed + 1

    @staticmethod
    def _sample(run_id: str, paths: list[str], output_words: int, output_tokens: int, epoch: int,
                words_by: Mapping[str, int] | None, facts_by: Mapping[str, int] | None,
                sections_by: Mapping[str, Iterable[str]] | None) -> Sample:
        """The smallest file a run wrote under one pattern: every file must meet the consumer's needs."""
        words = min(words_by.get(p, output_words) for p in paths) if words_by else output_words
        per_word = output_tokens / output_words if output_words else 0.0
        tokens = round(words * per_word) if words_by else output_tokens
        facts = min(facts_by[p] for p in paths if p in facts_by) if facts_by and any(p in facts_by for p in paths) else None
        sections = None
        if sections_by and any(p in sections_by for p in paths):
            common = [set(sections_by[p]) for p in paths if p in sections_by]
            sections = tuple(sorted(set.intersection(*common)))
        return Sample(run_id, words, tokens, facts, sections, epoch)

    def observe_score(self, task: str, run_id: str, score: float) -> None:
        """A judge's score for a run (may arrive after the run); each run counts once."""
        st = self.stats(task)
        if run_id in st.scored:
            return
        st.scored.append(run_id)
        st.scores.append(float(score))
        for rec in st.upstream.values():
            if run_id in rec.run_ids:
                rec.scores[run_id] = float(score)

    def observe_change(self, task: str, path: str, at: str | datetime) -> None:
        """A vault file of `task` changed: start a new sample epoch on its outputs, watch its consumers."""
        at_s = at.isoformat() if isinstance(at, datetime) else at
        self.stats(task).last_change = {"path": path, "at": at_s}
        cfg = self.configs.get(task)
        if cfg is None:
            return
        for pattern in cfg.outputs:
            self.edge_stats(task, pattern).epoch += 1
        node = task_node(task)
        consumers = {c for a in self.g.successors(node) for c in self.g.successors(a)}
        for c in consumers:
            name = self.g.nodes[c]["name"]
            if name == task:
                continue
            cst = self.stats(name)
            cst.upstream[task] = UpstreamChange(task, path, at_s, cst.score)

    def set_signatures(self, task: str, names: Iterable[str]) -> None:
        self.stats(task).signatures = tuple(sorted(set(names)))

    def observe_result(self, result: RunResult, score: float | None = None) -> None:
        """Convenience for the runner: fold a RunResult, counting declared blocks in its output."""
        cfg = self.configs.get(result.task)
        self.observe_run(result.task, result.run_id, result.started, result.artifacts, result.words,
                         result.output_tokens, count_blocks(cfg, result.output) if cfg else 0, result.status, score)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for `autovault graph --json`."""
        return {
            "tasks": {n: self.stats(n).as_dict() for n in self.tasks()},
            "artifacts": {a["pattern"]: {"produced": a["produced"], "producers": self.producers(a["pattern"]),
                                         "consumers": self.consumers(a["pattern"])}
                          for _, a in self.g.nodes(data=True) if a.get("kind") == "artifact"},
            "edges": [{"producer": e.producer, "consumer": e.consumer, "artifact": e.artifact,
                       "globs": list(e.globs), **self.edge_stats(e.producer, e.artifact).summary()}
                      for e in self.task_edges()],
        }


def _literal_head(glob: str) -> str | None:
    """The first path segment when it is plain text (a cheap pre-filter: `Drafts/…` never meets `Posts/…`)."""
    head = glob.removeprefix("./").split("/", 1)[0]
    return None if any(ch in head for ch in "*?[{") or "/" not in glob.removeprefix("./") else head


def _edge_key(e: TaskEdge) -> tuple[str, str, str]:
    return (e.producer, e.consumer, e.artifact)


def count_blocks(cfg: TaskConfig | None, text: str) -> int:
    """How many of the task's declared `expect.blocks` the text contains (0 when none are declared)."""
    if cfg is None or cfg.expect.blocks is None:
        return 0
    return len(re.findall(cfg.expect.blocks.regex, text, flags=re.MULTILINE))


_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


def text_stats(text: str) -> tuple[int, int, tuple[str, ...]]:
    """(words, facts = bullet lines, markdown headings) of an artifact's text, for `observe_run`."""
    lines = text.splitlines()
    facts = sum(1 for ln in lines if _BULLET.match(ln))
    sections = tuple(ln.strip() for ln in lines if ln.startswith("#"))
    return len(text.split()), facts, sections


def glob_exists(root: Path) -> Callable[[str], bool]:
    """An `exists(glob)` for `check`: does any file under the vault root match the glob?"""

    def exists(glob: str) -> bool:
        return any(p.is_file() for g in globs.to_pathlib(glob) for p in root.glob(g))

    return exists


# ---- checks ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FindingSpec:
    """What `check` found: becomes a Finding aggregate keyed by (kind, subject)."""

    kind: str
    subject: str
    tasks: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    severity: str = "warning"  # info | warning | error

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)


KINDS = ("too_small_for_consumer", "outputs_never_written", "blocks_without_parser", "orphan_input",
         "unread_output", "dependency_cycle", "low_after_upstream_change", "stale_output")
PAIR_KINDS = ("too_small_for_consumer", "low_after_upstream_change")  # subject "producer->consumer"


def check(
    graph: DataflowGraph,
    *,
    dead_after: int = 3,
    exists: Callable[[str], bool] | None = None,
    size_window: int = 3,
    drop: float = 1.0,
    change_runs: int = 3,
    max_cycles: int = 50,
) -> list[FindingSpec]:
    """Every finding that holds now, sorted by (kind, subject).

    dead_after: consecutive ok runs without a declared output (and identical outputs) before it counts.
    exists: `exists(glob) -> bool` over the vault's files; without it orphan inputs are not judged.
    size_window: producer sizes are the median of this many recent writes (since the producer last changed).
    drop, change_runs: a consumer whose mean score over its first `change_runs` runs after a producer
    change (and over its latest ones) sits `drop` below its score before the change.
    """
    found = [
        *_too_small(graph, size_window),
        *_never_written(graph, dead_after),
        *_blocks_without_parser(graph, dead_after),
        *_orphans(graph, exists),
        *_unread(graph),
        *_cycles(graph, max_cycles),
        *_low_after_change(graph, drop, change_runs),
        *_stale(graph, dead_after),
    ]
    return sorted(found, key=lambda f: f.key)


def diff_findings(
    previous: Iterable[tuple[str, str]], current: Iterable[FindingSpec]
) -> tuple[list[FindingSpec], list[tuple[str, str]]]:
    """(new findings to emit as Detected, keys no longer holding to emit as Resolved)."""
    prev = set(previous)
    now = {f.key: f for f in current}
    new = [f for k, f in sorted(now.items()) if k not in prev]
    resolved = sorted(prev - set(now))
    return new, resolved


def _enabled(graph: DataflowGraph, name: str) -> bool:
    cfg = graph.configs.get(name)
    return cfg is not None and cfg.enabled


def _too_small(graph: DataflowGraph, window: int) -> list[FindingSpec]:
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in graph.task_edges():
        if e.producer == e.consumer or not (_enabled(graph, e.producer) and _enabled(graph, e.consumer)):
            continue
        req = graph.configs[e.consumer].requires
        samples = graph.edge_stats(e.producer, e.artifact).recent(window)
        short = _shortfalls(req.model_dump(), samples)
        if short:
            pairs.setdefault((e.producer, e.consumer), []).append(
                {"artifact": e.artifact, "globs": list(e.globs), "samples": len(samples), "shortfalls": short})
    return [
        FindingSpec("too_small_for_consumer", f"{p}->{c}", (p, c),
                    {"producer": p, "consumer": c, "requires": graph.configs[c].requires.model_dump(exclude_defaults=True),
                     "artifacts": arts, "shortfalls": arts[0]["shortfalls"]})
        for (p, c), arts in pairs.items()
    ]


def _shortfalls(req: dict[str, Any], samples: list[Sample]) -> list[dict[str, Any]]:
    if not samples:
        return []
    out = []
    for measure, need in (("words", req["min_words"]), ("tokens", req["min_tokens"]), ("facts", req["min_facts"])):
        values = [v for s in samples if (v := getattr(s, measure)) is not None]
        if need is None or not values:
            continue
        observed = statistics.median(values)
        if observed < need:
            out.append({"measure": measure, "observed": observed, "required": need, "last": values[-1],
                        "mean": round(statistics.fmean(values), 1), "min": min(values)})
    seen = [s.sections for s in samples if s.sections is not None]
    if req["sections"] and seen:
        missing = [s for s in req["sections"] if s not in seen[-1]]
        if missing:
            out.append({"measure": "sections", "observed": list(seen[-1]), "required": req["sections"],
                        "missing": missing})
    return out


def _never_written(graph: DataflowGraph, dead_after: int) -> list[FindingSpec]:
    """Declared output patterns missed by `dead_after` ok runs in a row (a task without `outputs` has none)."""
    out = []
    for name in graph.tasks():
        cfg = graph.configs[name]
        if not cfg.enabled:
            continue
        missed = {p: graph.edge_stats(name, p).missed for p in cfg.outputs}
        dead = sorted(p for p, n in missed.items() if n >= dead_after)
        if dead:
            st = graph.stats(name)
            out.append(FindingSpec("outputs_never_written", name, (name,), {
                "patterns": dead, "missed_by_pattern": {p: missed[p] for p in dead},
                "runs_without_outputs": st.missed, "postprocess": cfg.postprocess,
                "blocks_recent": list(st.blocks)[-dead_after:], "last_run": st.last_run}, "error"))
    return out


def _blocks_without_parser(graph: DataflowGraph, dead_after: int) -> list[FindingSpec]:
    """Blocks declared, nothing to parse them, outputs not landing: the lesson-distiller case.

    A task that declares no `outputs` is skipped: its blocks are the product itself (the output-judge's
    `name: score` lines, read from the run by whoever asked), so there are no files for a parser to write
    and nothing that fails to land.
    """
    out = []
    for name in graph.tasks():
        cfg = graph.configs[name]
        st = graph.stats(name)
        if not cfg.enabled or not cfg.outputs or cfg.expect.blocks is None or cfg.postprocess or st.ok_runs == 0:
            continue
        recent = list(st.blocks)[-dead_after:]
        seen = any(b > 0 for b in recent)
        if st.missed >= 1 and (seen or st.missed >= dead_after):
            out.append(FindingSpec("blocks_without_parser", name, (name,), {
                "regex": cfg.expect.blocks.regex, "blocks_recent": recent, "blocks_seen": seen,
                "outputs": list(cfg.outputs), "runs_without_outputs": st.missed, "postprocess": None}, "error"))
    return out


def _orphans(graph: DataflowGraph, exists: Callable[[str], bool] | None) -> list[FindingSpec]:
    if exists is None:
        return []
    out = []
    for _, a in graph.g.nodes(data=True):
        if a.get("kind") != "artifact" or a["produced"]:
            continue
        consumers = tuple(graph.consumers(a["pattern"]))
        if any(_enabled(graph, c) for c in consumers) and not exists(a["pattern"]):
            out.append(FindingSpec("orphan_input", a["pattern"], consumers,
                                   {"glob": a["pattern"], "consumers": list(consumers)}))
    return out


def _unread(graph: DataflowGraph) -> list[FindingSpec]:
    out = []
    for _, a in graph.g.nodes(data=True):
        if a.get("kind") == "artifact" and a["produced"] and not graph.consumers(a["pattern"]):
            producers = tuple(graph.producers(a["pattern"]))
            out.append(FindingSpec("unread_output", a["pattern"], producers,
                                   {"pattern": a["pattern"], "producers": list(producers)}, "info"))
    return out


def _cycles(graph: DataflowGraph, limit: int) -> list[FindingSpec]:
    """Cycles of two or more tasks; a task that rewrites its own inputs in place is not a cycle."""
    tg = graph.task_graph()
    tg.remove_edges_from(list(nx.selfloop_edges(tg)))
    out = []
    for cyc in itertools.islice(nx.simple_cycles(tg), limit):
        start = cyc.index(min(cyc))
        ring = [*cyc[start:], *cyc[:start]]
        hops = [{"from": a, "to": b, "artifacts": tg.edges[a, b]["artifacts"]}
                for a, b in itertools.pairwise([*ring, ring[0]])]
        out.append(FindingSpec("dependency_cycle", "->".join([*ring, ring[0]]), tuple(ring), {"cycle": ring, "hops": hops}))
    return out


def _low_after_change(graph: DataflowGraph, drop: float, runs: int) -> list[FindingSpec]:
    out = []
    for name in graph.tasks():
        for rec in graph.stats(name).upstream.values():
            after = rec.scores_after()
            if rec.baseline is None or not after:
                continue
            first = statistics.fmean(after[:runs])
            latest = statistics.fmean(after[-runs:])
            if rec.baseline - first >= drop and rec.baseline - latest >= drop:
                out.append(FindingSpec("low_after_upstream_change", f"{rec.producer}->{name}", (rec.producer, name), {
                    "producer": rec.producer, "consumer": name, "path": rec.path, "changed_at": rec.at,
                    "baseline": rec.baseline, "scores_after": after, "drop": round(rec.baseline - first, 3)}))
    return out


def _stale(graph: DataflowGraph, dead_after: int) -> list[FindingSpec]:
    """The same artifact content run after run (a copied example, a frozen collector)."""
    out = []
    for name in graph.tasks():
        st = graph.stats(name)
        recent = list(st.written)[-dead_after:]
        if graph.configs[name].enabled and len(recent) == dead_after and recent[0] and all(w == recent[0] for w in recent):
            out.append(FindingSpec("stale_output", name, (name,),
                                   {"runs": dead_after, "hashes": sorted(recent[0])}))
    return out


def mismatched(findings: Iterable[FindingSpec]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """For drawing: (producer, consumer) pairs with an interface finding, (task, pattern) outputs never written."""
    pairs: set[tuple[str, str]] = set()
    dead: set[tuple[str, str]] = set()
    for f in findings:
        if f.kind in PAIR_KINDS:
            pairs.add((f.tasks[0], f.tasks[1]))
        elif f.kind == "outputs_never_written":
            dead.update((f.subject, p) for p in f.evidence["patterns"])
    return pairs, dead
