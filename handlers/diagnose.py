"""Diagnose: pick the bottleneck task and pack the evidence a proposer needs — bounded, no raw logs.

`diagnose(task, deps)` returns an `Evidence`: the task's signatures (from runs, script lints, the data audit
and open data-flow findings), failing checks, short excerpts of its last runs, its vault.yml block, the full
texts (with sha256) of every file a fix may edit (vault.yml, prompt, collector, postprocessor, training data),
its upstream producers and downstream consumers with their contracts and observed sizes. Every FileEdit a
proposer makes carries the hash from here, so a file that changed since diagnosis is never overwritten.

`choose_bottleneck(deps)` ranks tasks worst first: lowest rolling score, then the most severe signatures.

deps is anything shaped like `daemon.bootstrap.Services`: `config`, `history`, `read_vault_text`, and
optionally `store` (quality table and data-flow findings) or `findings` (a callable giving FindingSpecs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import Any, Protocol

from adapters.yaml_edit import block_text
from domain.checks import clip, contract_checks, count_bullets, headings, is_truncated, universal_checks
from domain.config import TaskConfig, VaultConfig
from domain.ids import sha256_text
from domain.signatures import SEVERITY_RANK, RunView, Signature
from handlers import candidates, mining
from handlers.collector_trace import collector_evidence, collector_signatures
from handlers.diagnose_static import DataAudit, audit_data, head_limits, section_leaks, sed_loops
from handlers.tasks import History, consumers_of, run_from_view, task_signatures
from handlers.tried import tried
from projections import globs

RUNS = 8  # runs the signatures look at
MINE_RUNS = 500  # past runs mining looks through: good runs can be old, the window only bounds the read
EXCERPT_RUNS = 4  # runs quoted in the evidence
OUTPUT_CHARS = 700  # per quoted output (head and tail)
CONTEXT_CHARS = 300  # per quoted context
FILE_CAP = 64_000  # a file larger than this is shown clipped and marked incomplete (rules never edit it)
DATA_CAP = 256_000  # training data texts carried in full up to this many characters in all
MAX_UPSTREAM = 6  # producers whose recent output sizes are read
FORMAT_CHECKS = frozenset({"min_words", "max_words", "sections", "blocks", "json_schema"})


class Deps(Protocol):
    @property
    def config(self) -> VaultConfig: ...

    @property
    def history(self) -> History: ...

    def read_vault_text(self, rel: str | None) -> str: ...


# ---- the evidence pack --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileText:
    path: str  # vault-relative; vault.yml's own name when in_config
    text: str
    sha256: str  # of the whole file on disk, even when `text` is clipped
    role: str  # config | prompt | collect | postprocess | data | consumer-prompt
    in_config: bool = False
    complete: bool = True


@dataclass(frozen=True)
class SignatureNote:
    name: str
    severity: str
    lever: str
    summary: str
    source: str  # runs | lint | audit | finding
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunExcerpt:
    run_id: str
    started: str
    model: str
    status: str
    done_reason: str
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int
    words: int
    facts: int
    score: float | None
    failing: tuple[str, ...]
    output: str  # head … tail, at most OUTPUT_CHARS
    context: str  # at most CONTEXT_CHARS


@dataclass(frozen=True)
class Neighbour:
    task: str
    relation: str  # upstream | downstream
    artifacts: tuple[str, ...]
    requires: dict[str, Any]  # what the consumer of the edge requires
    expect: dict[str, Any]
    observed: dict[str, Any]  # producer's recent output sizes: words, tokens, facts
    score: float | None = None


@dataclass(frozen=True)
class Evidence:
    task: str
    tasks: tuple[str, ...]  # every task whose files or contracts are included
    why: str
    score: float | None
    config_name: str
    config_block: str
    config: dict[str, Any]
    signatures: tuple[SignatureNote, ...]
    failing_checks: tuple[str, ...]
    judge_reasons: tuple[str, ...]
    runs: tuple[RunExcerpt, ...]
    model_stats: dict[str, dict[str, Any]]
    upstream: tuple[Neighbour, ...]
    downstream: tuple[Neighbour, ...]
    files: dict[str, FileText]
    script_inputs: dict[str, int]  # files a collector reads with head -N -> their line count
    input_headings: tuple[str, ...]  # headings seen in the task's input files, most common first
    data_audit: dict[str, Any] | None
    mined: tuple[dict[str, Any], ...]  # training examples mined from high-scoring runs
    editable: tuple[str, ...]
    approve: tuple[str, ...]
    output_tokens_complete: tuple[int, ...]  # output tokens of runs that stopped on their own
    cost: dict[str, float] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)  # a lopsided training set: plan drop|add, count, examples
    collector: dict[str, Any] = field(default_factory=dict)  # the collector measured (handlers.collector_trace)
    candidates: tuple[dict[str, Any], ...] = ()  # the model pool ranked (handlers.candidates), when in question
    check_details: tuple[str, ...] = ()  # recent runs' failed checks with their details (quotes of the output)
    tried: tuple[dict[str, Any], ...] = ()  # proposals verified since the task's last kept change (handlers.tried)

    # -- reading helpers for proposers --
    def file(self, role: str) -> FileText | None:
        return next((f for f in self.files.values() if f.role == role), None)

    @property
    def config_text(self) -> str | None:
        f = self.files.get(self.config_name)
        return f.text if f is not None and f.complete else None

    def signature(self, name: str) -> SignatureNote | None:
        return next((s for s in self.signatures if s.name == name), None)

    def has(self, *names: str) -> bool:
        return any(s.name in names for s in self.signatures)

    def task_config(self) -> TaskConfig:
        return TaskConfig.model_validate(self.config)

    # -- renderings --
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, default=str)

    def to_prompt(self, max_chars: int = 12_000) -> str:
        """A compact text for an LLM proposer: most decisive parts first, then the measurements as far as they fit
        beside the task's prompt (kept whole when it fits at all: it is what a fix edits), then the other files,
        whole or left out."""
        parts: list[str] = [f"# Task {self.task}  (rolling score {_fmt(self.score)}; chosen because {self.why})"]
        if self.signatures:
            parts.append("## Signatures")
            for s in self.signatures:
                ev = clip(json.dumps(_compact(s.evidence), ensure_ascii=False, default=str), 300)
                parts.append(f"- {s.name} [{s.severity}, lever {s.lever}, from {s.source}]: {s.summary} | {ev}")
        if self.failing_checks or self.judge_reasons:
            parts.append("## Failing checks and judge reasons")
            parts += [f"- check {c}" for c in self.failing_checks] + [f"- judge: {r}" for r in self.judge_reasons]
        parts.append(f"## Config block ({self.config_name})\n{self.config_block.rstrip()}")
        if self.model_stats:
            parts.append("## Models seen in runs\n" + "\n".join(
                f"- {m}: {st}" for m, st in sorted(self.model_stats.items())))
        for title, group in (("Upstream producers", self.upstream), ("Downstream consumers", self.downstream)):
            if group:
                parts.append(f"## {title}\n" + "\n".join(
                    f"- {n.task} via {', '.join(n.artifacts)}: requires {n.requires or '{}'}; observed {n.observed}"
                    for n in group))
        if self.data_audit:
            parts.append(f"## Training data audit\n{json.dumps(self.data_audit, default=str)}")
            if self.mined or self.balance:
                plan = {k: v for k, v in self.balance.items() if k != "examples"}
                parts.append(f"mined examples ready: {len(self.mined)}; balancing: {json.dumps(plan, default=str)}")
        blocks = self._file_blocks()
        head = "\n".join(parts)
        own = blocks[0][1] if blocks and blocks[0][0].role == "prompt" else ""
        reserve = len(own) + 2 if len(head) + len(own) + 60 <= max_chars else 0
        room = max_chars - len(head) - reserve - 60
        for section in self._measured():
            if len(section) + 1 <= room:
                parts.append(section)
                room -= len(section) + 1
        head = "\n".join(parts)
        budget = max_chars - len(head) - 40
        files = []
        for f, block in blocks:
            if len(block) + 2 <= budget:
                files.append(block)
                budget -= len(block) + 2
            else:
                files.append(f"### {f.path} ({f.role}): left out, {len(f.text)} chars")
        text = head + "\n## Files\n" + "\n\n".join(files)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    def _measured(self) -> list[str]:
        """The measurement sections, most decisive first: failed checks quoting the output, the collector measured
        in a shadow, what was already tried, the recent runs."""
        out = []
        if self.check_details:
            out.append("## Failed checks, quoting the output\n" + "\n".join(f"- {d}" for d in self.check_details))
        if self.collector:
            out.append("## Collector measured in a shadow (coverage of its inputs, forks, prompt tokens)\n"
                       + clip(json.dumps(_compact(self.collector), ensure_ascii=False, default=str), 1500))
        if self.tried:
            out.append("## Already tried since the last kept change (do not propose these again)\n" + "\n".join(
                f"- {t['proposer']} ({t['lever']}): {t['description']} → {t['outcome']}"
                + (f", effect {t['effect']:+.2f}" if t.get("effect") is not None else "")
                + (f" — {t['reason']}" if t.get("reason") else "") for t in self.tried))
        if self.runs:
            out.append("## Recent runs (newest last)\n" + "\n".join(
                f"- {r.run_id} {r.model} {r.status}/{r.done_reason} tokens {r.output_tokens} "
                f"(thinking {r.thinking_tokens}, prompt {r.prompt_tokens}) words {r.words} "
                f"score {_fmt(r.score)} failing {list(r.failing)}\n  output: {clip(r.output, 400)}" for r in self.runs))
        return out

    def _file_blocks(self) -> list[tuple[FileText, str]]:
        order = {"prompt": 0, "config": 1, "collect": 2, "postprocess": 3, "consumer-prompt": 4, "data": 5}
        out = []
        for f in sorted(self.files.values(), key=lambda f: (order.get(f.role, 9), f.path)):
            text = f.text if f.role != "data" else "\n".join(  # numbered: a data_remove edit names lines
                f"{i}: {line}" for i, line in enumerate(f.text.split("\n"), start=1) if line.strip())
            out.append((f, f"### {f.path} ({f.role}{'' if f.complete else ', clipped'}; sha256 {f.sha256[:12]})\n"
                           f"{text}"))
        return out


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


def _compact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v, depth + 1) for k, v in list(value.items())[:12]}
    if isinstance(value, list | tuple):
        return [_compact(v, depth + 1) for v in list(value)[:6]]
    if isinstance(value, str):
        return clip(value, 120)
    return value


# ---- choosing the bottleneck ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    task: str
    score: float | None
    signatures: tuple[str, ...]
    severity: int  # sum of signature severities

    @property
    def key(self) -> tuple[float, int, str]:
        return (self.score if self.score is not None else 5.0, -self.severity, self.task)


def rolling_scores(deps: Any) -> dict[str, float]:
    """task -> rolling mean from the quality read model; {} without a store."""
    store = getattr(deps, "store", None)
    if store is None:
        return {}
    from projections.quality import quality_table

    with store.engine.connect() as conn:
        return {q.task: q.rolling_mean for q in quality_table(conn) if q.rolling_mean is not None}


def rank_tasks(deps: Deps, *, exclude: Iterable[str] = ()) -> list[Ranked]:
    """Enabled tasks with something to fix (below target, or showing a signature or a finding, e.g. a producer
    too thin for its consumer whose own score is fine), worst first."""
    cfg = deps.config
    scores = rolling_scores(deps)
    if not scores:
        scores = {t: s for t in cfg.tasks if (s := _history_mean(deps.history, t)) is not None}
    skip = set(exclude)
    out = []
    found = all_findings(deps)
    for name, task in cfg.tasks.items():
        if not task.enabled or name in skip:
            continue
        sigs = open_signatures(name, deps, measured=False, findings=found)
        score = scores.get(name)
        if not sigs and (score is None or score >= cfg.research.target):
            continue
        out.append(Ranked(name, score, tuple(s.name for s in sigs), sum(SEVERITY_RANK.get(s.severity, 1) for s in sigs)))
    return sorted(out, key=lambda r: r.key)


STATIC_SIGNATURES = frozenset({"section_regex_leak", "subprocess_loop", "training_data_too_few",
                               "training_data_imbalanced"})
NOTICES = frozenset({"collector_unmeasured"})  # shown, but nothing a delta could fix


def file_signatures(task: str, deps: Any, *, measured: bool = True) -> list[SignatureNote]:
    """What the task's files show before any run: script lints, the training-data audit, and (`measured`) its
    collector run traced in a shadow (`handlers.collector_trace`: starving limiter, section leak, fork loop,
    context overflow, with the measurements)."""
    tc = deps.config.task(task)
    notes: list[SignatureNote] = []
    if measured and tc.collect:
        try:
            notes = list(collector_signatures(task, deps))
        except Exception as e:  # a measurement that cannot run is said, not fatal to the listing
            notes = [SignatureNote("collector_unmeasured", "low", "script",
                                   f"collector not measured: {' '.join(str(e).split())[:160]}", "trace")]
    notes = notes or _lint_notes(task, tc, deps.read_vault_text)  # the lints only where nothing was measured
    audit, _ = _audit(deps.config, tc)
    return notes + (_audit_notes(task, audit) if audit is not None else [])


def open_signatures(task: str, deps: Any, *, measured: bool = True,
                    findings: Sequence[Any] | None = None) -> list[SignatureNote]:
    """Everything open on a task, whatever its score: signatures of its runs since its last kept change (older
    runs ran on files that are gone), what its files show (`file_signatures`), and data-flow findings naming it.
    What `status --signatures`, `signatures`, the ranking and the loop show and work on."""
    notes = [_note(s, "runs") for s in _run_signatures(task, deps)]
    notes += file_signatures(task, deps, measured=measured)
    notes += [SignatureNote(f.kind, "high" if f.severity == "error" else "medium", _finding_lever(f.kind),
                            f"data-flow finding on {f.subject}", "finding", _plain(f.evidence))
              for f in _findings(deps, task, findings)]
    unique: dict[str, SignatureNote] = {}
    for n in notes:
        unique.setdefault(n.name, n)
    return sorted(unique.values(), key=lambda s: -SEVERITY_RANK.get(s.severity, 1))


def choose_bottleneck(deps: Deps, *, exclude: Iterable[str] = ()) -> str | None:
    ranked = rank_tasks(deps, exclude=exclude)
    return ranked[0].task if ranked else None


def _history_mean(history: History, task: str) -> float | None:
    values = list(history.scores(task).values())[-5:]
    return round(fmean(values), 3) if values else None


# ---- diagnose ------------------------------------------------------------------------------------------


def diagnose(task: str | None, deps: Deps) -> Evidence:
    """The evidence pack for `task` (None: the bottleneck)."""
    why = "named"
    if task is None:
        ranked = rank_tasks(deps)
        if not ranked:
            raise LookupError("no task needs work: every task is at target with no signature")
        task, why = ranked[0].task, f"worst rolling score {_fmt(ranked[0].score)} with {list(ranked[0].signatures)}"
    cfg = deps.config
    tc = cfg.task(task)
    read = deps.read_vault_text
    views = current_history(deps, task).views(task, RUNS)
    run_scores = deps.history.scores(task)
    score = rolling_scores(deps).get(task) or _history_mean(deps.history, task)
    if why == "named":
        why = f"named by the caller (rolling score {_fmt(score)})"

    files = _files(cfg, tc, read)
    sigs = [_note(s, "runs") for s in _run_signatures(task, deps)]
    measured, collector = collector_evidence(task, deps)  # the collector traced in a shadow
    sigs += [n for n in measured if not any(s.name == n.name for s in sigs)] if measured is not None else \
        _lint_notes(task, tc, read)
    audit, data_texts = _audit(cfg, tc)
    if audit is not None:
        sigs += _audit_notes(task, audit)
        for path, text in data_texts.items():
            files[path] = _file(path, text, "data")
    findings = _findings(deps, task)
    sigs += [SignatureNote(f.kind, "high" if f.severity == "error" else "medium", _finding_lever(f.kind),
                           f"data-flow finding on {f.subject}", "finding", _plain(f.evidence))
             for f in findings if not any(s.name == f.kind for s in sigs)]
    sigs.sort(key=lambda s: -SEVERITY_RANK.get(s.severity, 1))

    mined: tuple[dict[str, Any], ...] = ()
    balance: dict[str, Any] = {}
    if audit is not None and data_texts and (audit.too_few or audit.imbalanced):
        past = deps.history.views(task, MINE_RUNS)
        sigs, mined, balance = _data_plans(cfg.root, tc, read(tc.prompt), past, run_scores, audit, data_texts, sigs)
    failing = sorted({c for v in views for c in v.failing})
    reasons = _judge_reasons(deps, task)
    upstream, downstream = _neighbours(cfg, task, views, deps.history)
    involved = [task, *_short_consumers(sigs)]
    for other in involved[1:]:  # both ends of a mismatch: the consumer's prompt may be what has to change
        rel = cfg.tasks[other].prompt if other in cfg.tasks else None
        if rel and rel not in files and (cfg.root / rel).is_file():
            files[rel] = _file(rel, read(rel), "consumer-prompt")
    return Evidence(
        task=task, tasks=tuple(dict.fromkeys(involved)), why=why, score=score,
        config_name=cfg.source.name, config_block=_config_block(cfg, task),
        config=tc.model_dump(mode="json", exclude_defaults=True),
        signatures=tuple(sigs), failing_checks=tuple(failing), judge_reasons=tuple(reasons),
        runs=tuple(_excerpt(v, run_scores.get(v.run_id)) for v in views[-EXCERPT_RUNS:]),
        model_stats=(stats := _model_stats(views, run_scores, tc)),
        upstream=tuple(upstream), downstream=tuple(downstream), files=files,
        script_inputs=_script_inputs(cfg.root, files), input_headings=_input_headings(cfg.root, tc),
        data_audit=audit.as_dict() if audit is not None else None,
        mined=mined, balance=balance,
        editable=tuple(cfg.research.editable), approve=tuple(cfg.research.approve),
        output_tokens_complete=tuple(v.output_tokens for v in views
                                     if v.ok and not is_truncated(v.done_reason) and v.output_tokens),
        collector=collector, candidates=candidates.for_evidence(task, tc.model_dump(mode="json"), stats, sigs, deps),
        check_details=_check_details(views, tc), tried=_tried(deps, task),
    )


def _tried(deps: Any, task: str) -> tuple[dict[str, Any], ...]:
    store = getattr(deps, "store", None)
    return () if store is None else tried(store, task, last_own_change(deps, task))


def _check_details(views: Sequence[RunView], tc: TaskConfig, limit: int = 16) -> tuple[str, ...]:
    """The recent runs' failed checks (contract and universal) with their details, which quote the output: what
    the model wrote, not only that a check failed."""
    out: list[str] = []
    for v in views[-EXCERPT_RUNS:]:
        checks = [*contract_checks(v.output, tc.expect, ()), *universal_checks(run_from_view(v), prose=tc.expect.prose)]
        out += [f"{v.run_id}: {c.name} — {c.detail}" for c in checks if not c.passed]
    return tuple(out[-limit:])


def _short_consumers(sigs: Iterable[SignatureNote]) -> list[str]:
    """Consumers a too-small output fails: the delta may touch them too."""
    out: list[str] = []
    for s in sigs:
        if s.name == "too_short_for_consumer":
            out += list((s.evidence.get("consumers") or {}).keys())
        elif s.name == "too_small_for_consumer" and s.evidence.get("consumer"):
            out.append(str(s.evidence["consumer"]))
    return out


def _run_signatures(task: str, deps: Deps) -> list[Signature]:
    return task_signatures(task, config=deps.config, history=current_history(deps, task),
                           read_text=deps.read_vault_text, reads=globs.overlaps, window=RUNS)


class _RunsSince:
    """A History showing only the runs started after `since`: runs made before the task's last kept change ran
    on files that are gone, so the signatures they show are stale (re-proposing on them repeats a fix, e.g.
    halving an already halved `head -N`). Until live runs fill the window, the kept cycle's candidate runs
    stand in: they ran the current files, so what is still wrong shows before the task runs live again (a
    prompt grown for its consumer whose answers now hit num_predict). Scores and previous outputs are history
    and stay whole."""

    def __init__(self, history: History, since: dt.datetime, cycle: str | None = None) -> None:
        self.history, self.since, self.cycle = history, since, cycle

    def views(self, task: str, limit: int = 10) -> list[RunView]:
        live = [v for v in self.history.views(task, limit) if _started_after(v.started, self.since)]
        arm = getattr(self.history, "cycle_views", None)
        if len(live) >= limit or self.cycle is None or not callable(arm):
            return live
        return [*arm(task, self.cycle, "cand", limit - len(live)), *live]

    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]:
        return self.history.previous_outputs(task, n, exclude=exclude)

    def scores(self, task: str) -> dict[str, float]:
        return self.history.scores(task)


def _started_after(started: str, since: dt.datetime) -> bool:
    try:
        at = dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return True  # an unreadable time: keep the run rather than lose evidence
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) > since


def last_own_change(deps: Any, task: str) -> dt.datetime | None:
    """When a cycle on `task` itself last changed one of its files (None: never, or no store). A change made by
    another task's cycle (a producer growing its output for this consumer) leaves this task's evidence valid."""
    kept = last_own_keep(deps, task)
    return None if kept is None else kept[0]


def last_own_keep(deps: Any, task: str) -> tuple[dt.datetime, str] | None:
    """(when, cycle key) of the last change a cycle on `task` itself made to one of its files."""
    store = getattr(deps, "store", None)
    if store is None:
        return None
    try:
        from eventsourcing.utils import get_topic

        from domain.aggregates import Task
        from domain.ids import task_id

        topic, tid = get_topic(Task.Changed), task_id(task)  # type: ignore[attr-defined]
        last: tuple[dt.datetime, str] | None = None
        start = 1
        while page := store.recorder.select_notifications(start, 1000, topics=[topic]):
            for n in page:
                ev: Any = store.mapper.to_domain_event(n)
                if ev.originator_id == tid and ev.by == "cycle" and ev.cycle_id:
                    cycle = store.get_cycle(ev.cycle_id)
                    if cycle is not None and cycle.task == task:
                        last = (ev.timestamp, str(ev.cycle_id))
            start = page[-1].id + 1
        return last
    except Exception:  # the staleness filter is a refinement: a store that cannot answer leaves history whole
        return None


def current_history(deps: Any, task: str) -> History:
    kept = last_own_keep(deps, task)
    history: History = deps.history
    return history if kept is None else _RunsSince(history, *kept)


def _note(s: Signature, source: str) -> SignatureNote:
    return SignatureNote(s.name, s.severity, s.lever, s.summary, source, _plain(s.evidence))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _config_block(cfg: VaultConfig, task: str) -> str:
    try:
        text = cfg.source.read_text(encoding="utf-8")
    except OSError:
        return ""
    return block_text(text, ["tasks", task])


def _file(path: str, text: str, role: str, in_config: bool = False) -> FileText:
    digest = sha256_text(text)
    if len(text) > FILE_CAP:
        return FileText(path, text[:FILE_CAP], digest, role, in_config, complete=False)
    return FileText(path, text, digest, role, in_config)


def _files(cfg: VaultConfig, tc: TaskConfig, read: Callable[[str | None], str]) -> dict[str, FileText]:
    files: dict[str, FileText] = {}
    with contextlib.suppress(OSError):
        files[cfg.source.name] = _file(cfg.source.name, cfg.source.read_text(encoding="utf-8"), "config", True)
    for role, rel in (("prompt", tc.prompt), ("collect", _script_path(tc.collect)),
                      ("postprocess", _script_path(tc.postprocess))):
        if rel and (cfg.root / rel).is_file():
            files[rel] = _file(rel, read(rel), role)
    return files


def _script_path(command: str | None) -> str | None:
    return command.split()[0] if command else None


def _lint_notes(task: str, tc: TaskConfig, read: Callable[[str | None], str]) -> list[SignatureNote]:
    script = read(_script_path(tc.collect)) if tc.collect else ""
    notes = []
    for leak in section_leaks(script):
        notes.append(SignatureNote(
            "section_regex_leak", "high", "script",
            f"collector line {leak.line} stops at '{leak.marks} [^{leak.letter}]': every '{leak.marks} {leak.letter}…' "
            "section after the wanted one leaks into the context", "lint",
            {"line": leak.line, "awk": leak.text, "letter": leak.letter, "script": _script_path(tc.collect)}))
    for loop in sed_loops(script):
        notes.append(SignatureNote(
            "subprocess_loop", "medium", "script",
            f"{len(loop.fields)} sed forks per item of the loop over ${loop.loop_var} (lines {loop.lines[0]}–{loop.lines[-1]})",
            "lint", {"lines": list(loop.lines), "fields": [f[1] for f in loop.fields],
                     "script": _script_path(tc.collect)}))
    return notes


def _audit(cfg: VaultConfig, tc: TaskConfig) -> tuple[DataAudit | None, dict[str, str]]:
    if tc.training is None:
        return None, {}
    texts: dict[str, str] = {}
    total = 0
    for g in globs.to_pathlib(tc.training.data):
        for p in sorted(cfg.root.glob(g)):
            if p.is_file():
                rel = p.relative_to(cfg.root).as_posix()
                texts[rel] = p.read_text(encoding="utf-8", errors="replace")
                total += len(texts[rel])
    t = tc.training
    audit = audit_data(texts, t.min_examples, t.max_class_share, t.label_field)
    return audit, (texts if total <= DATA_CAP else {})


def _audit_notes(task: str, audit: DataAudit) -> list[SignatureNote]:
    notes = []
    if audit.too_few:
        notes.append(SignatureNote("training_data_too_few", "medium", "data",
                                   f"{audit.examples} training examples < min_examples {audit.min_examples}",
                                   "audit", {"examples": audit.examples, "min_examples": audit.min_examples,
                                             "files": audit.files}))
    if audit.imbalanced and audit.dominant:
        label, share = audit.dominant
        notes.append(SignatureNote("training_data_imbalanced", "medium", "data",
                                   f"label {label} is {share:.2f} of the examples > max_class_share "
                                   f"{audit.max_class_share}", "audit",
                                   {"label": label, "share": round(share, 3), "labels": audit.labels,
                                    "max_class_share": audit.max_class_share}))
    return notes


def all_findings(deps: Any) -> list[Any]:
    """Open data-flow findings (from deps.findings(), else checked on the store's events); [] when unreadable."""
    getter = getattr(deps, "findings", None)
    try:
        if callable(getter):
            return list(getter())
        if getattr(deps, "store", None) is not None:
            from projections.dataflow import check, glob_exists
            from projections.dataflow_state import DataflowState, vault_artifact_reader

            store = deps.store
            state = DataflowState.build(deps.config, store, store.blobs.get_text,
                                        vault_artifact_reader(deps.config.root))
            return list(check(state.graph, exists=glob_exists(deps.config.root)))
    except Exception:  # findings are a bonus: a broken read model must not stop a diagnosis
        return []
    return []


def _findings(deps: Any, task: str, found: Sequence[Any] | None = None) -> list[Any]:
    """The open data-flow findings naming the task (`found`: all of them, already read)."""
    found = all_findings(deps) if found is None else found
    return [f for f in found if task in f.tasks and f.kind not in ("unread_output", "orphan_input")]


def _finding_lever(kind: str) -> str:
    return {"too_small_for_consumer": "prompt", "outputs_never_written": "postprocess",
            "blocks_without_parser": "postprocess"}.get(kind, "prompt")


def _judge_reasons(deps: Any, task: str) -> list[str]:
    store = getattr(deps, "store", None)
    if store is None:
        return []
    from projections.quality import task_quality

    try:
        with store.engine.connect() as conn:
            q = task_quality(conn, task)
    except Exception:
        return []
    return [clip(r) for r in (q.last_reasons if q else ())][:5]


def _excerpt(v: RunView, score: float | None) -> RunExcerpt:
    out = v.output
    if len(out) > OUTPUT_CHARS:
        out = out[: OUTPUT_CHARS - 200] + " … " + out[-180:]
    return RunExcerpt(v.run_id, v.started, v.model, v.status, v.done_reason, v.prompt_tokens, v.output_tokens,
                      v.thinking_tokens, v.words, count_bullets(v.output), score, tuple(v.failing), out,
                      clip(v.context, CONTEXT_CHARS))


def _model_stats(views: Sequence[RunView], scores: Mapping[str, float], tc: TaskConfig) -> dict[str, dict[str, Any]]:
    """Per model: runs, runs passing the format/length contract, mean score."""
    out: dict[str, dict[str, Any]] = {}
    for v in views:
        if not v.model:
            continue
        st = out.setdefault(v.model, {"runs": 0, "format_pass": 0, "scores": []})
        st["runs"] += 1
        checks = contract_checks(v.output, tc.expect, ())
        ok = v.ok and not is_truncated(v.done_reason) and not (set(v.failing) & FORMAT_CHECKS) and all(
            c.passed for c in checks if c.name in FORMAT_CHECKS)
        st["format_pass"] += int(ok)
        if v.run_id in scores:
            st["scores"].append(scores[v.run_id])
    for st in out.values():
        sc = st.pop("scores")
        st["mean_score"] = round(fmean(sc), 3) if sc else None
        st["pass_rate"] = round(st["format_pass"] / st["runs"], 3)
    return out


def _neighbours(cfg: VaultConfig, task: str, views: Sequence[RunView],
                history: History) -> tuple[list[Neighbour], list[Neighbour]]:
    tc = cfg.task(task)
    observed = _sizes(views)
    down: list[Neighbour] = []
    for name, req in consumers_of(cfg, task, globs.overlaps).items():
        other = cfg.tasks[name]
        arts = tuple(o for o in tc.outputs if any(globs.overlaps(o, g) for g in other.inputs))
        down.append(Neighbour(name, "downstream", arts, req.model_dump(exclude_defaults=True),
                              other.expect.model_dump(exclude_defaults=True, exclude={"json_schema"}), observed))
    up: list[Neighbour] = []
    for name, other in cfg.tasks.items():
        if name == task:
            continue
        arts = tuple(o for o in other.outputs if any(globs.overlaps(o, g) for g in tc.inputs))
        if arts:
            up.append(Neighbour(name, "upstream", arts, tc.requires.model_dump(exclude_defaults=True),
                                other.expect.model_dump(exclude_defaults=True, exclude={"json_schema"}),
                                _sizes(history.views(name, 5)) if len(up) < MAX_UPSTREAM else {}))
    return up, down


def _sizes(views: Sequence[RunView]) -> dict[str, Any]:
    ok = [v for v in views if v.ok]
    if not ok:
        return {}
    words, tokens, facts = [v.words for v in ok], [v.output_tokens for v in ok], [count_bullets(v.output) for v in ok]
    return {"words": {"min": min(words), "max": max(words)}, "tokens": {"min": min(tokens), "max": max(tokens)},
            "facts": {"min": min(facts), "max": max(facts)},
            "tokens_per_word": round(sum(tokens) / max(1, sum(words)), 3)}


def _script_inputs(root: Path, files: Mapping[str, FileText]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in files.values():
        if f.role not in ("collect", "postprocess"):
            continue
        for _, _, arg in head_limits(f.text):
            if arg and not arg.startswith(("-", "$")) and (root / arg).is_file():
                with open(root / arg, "rb") as fh:
                    out[arg] = sum(1 for _ in fh)
    return out


def _input_headings(root: Path, tc: TaskConfig, sample: int = 20) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    seen = 0
    for pattern in tc.inputs:
        for g in globs.to_pathlib(pattern):
            for p in sorted(root.glob(g)):
                if seen >= sample or not p.is_file() or p.suffix != ".md":
                    continue
                seen += 1
                text = p.read_text(encoding="utf-8", errors="replace")
                for level, title in headings(text):
                    key = "#" * level + " " + title
                    counts[key] = counts.get(key, 0) + 1
    return tuple(k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:30])


def _data_plans(root: Path, tc: TaskConfig, template: str, past: Sequence[RunView], scores: Mapping[str, float],
                audit: DataAudit, data: Mapping[str, str], sigs: list[SignatureNote]
                ) -> tuple[list[SignatureNote], tuple[dict[str, Any], ...], dict[str, Any]]:
    """Mined examples for a too-small set, the balancing plan for a lopsided one, and each audit signature's
    evidence saying what mining found or why it found nothing."""
    notes: dict[str, dict[str, Any]] = {}
    mined: tuple[dict[str, Any], ...] = ()
    balance: dict[str, Any] = {}
    if audit.too_few:
        found = mining.mine(tc, template, past, scores, data)
        mined = found.examples
        notes["training_data_too_few"] = {"mined": found.summary()} if mined else {"not_mined": "; ".join(
            filter(None, [mining.why_not_mined(root, tc, past, scores, refused=found.refused), found.label_problem]))}
    if audit.imbalanced and audit.dominant is not None:
        others = [lab for lab in audit.labels if lab != audit.dominant[0]]
        found = mining.mine(tc, template, past, scores, data, labels=others, limit=mining.minority_needed(audit))
        plan = mining.balance_plan(audit, found)
        if isinstance(plan, str):
            balance = {"plan": None, "reason": plan}
            notes["training_data_imbalanced"] = {"not_balanced": plan}
        else:
            balance = {"plan": plan[0], "count": plan[1],
                       "examples": list(found.examples[: plan[1]]) if plan[0] == "add" else []}
            notes["training_data_imbalanced"] = {"balance": f"{plan[0]} {plan[1]} example(s)"}
    sigs = [replace(s, evidence={**s.evidence, **notes[s.name]}) if s.name in notes else s for s in sigs]
    return sigs, mined, balance


_why_not_mined = mining.why_not_mined  # the name tests and the benchmark knew it by


__all__ = ["NOTICES", "STATIC_SIGNATURES", "Evidence", "FileText", "Neighbour", "Ranked", "RunExcerpt", "SignatureNote",
           "all_findings", "choose_bottleneck", "current_history", "diagnose", "file_signatures", "open_signatures",
           "rank_tasks", "rolling_scores"]
