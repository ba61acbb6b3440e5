"""The evidence pack a diagnosis hands to proposers, and its renderings (JSON for the record, a compact text
for an LLM).

Bounded, no raw logs: the task's signatures, failing checks, short excerpts of its last runs, its vault.yml
block, the full texts (with sha256) of every file a fix may edit, its upstream producers and downstream
consumers with their contracts and observed sizes. Every FileEdit a proposer makes carries the hash from here,
so a file that changed since diagnosis is never overwritten.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from domain.checks import clip
from domain.config import TaskConfig


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
        parts: list[str] = [f"# Task {self.task}  (rolling score {fmt_score(self.score)}; chosen because {self.why})"]
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
                f"score {fmt_score(r.score)} failing {list(r.failing)}\n  output: {clip(r.output, 400)}"
                for r in self.runs))
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


def fmt_score(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


def _compact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v, depth + 1) for k, v in list(value.items())[:12]}
    if isinstance(value, list | tuple):
        return [_compact(v, depth + 1) for v in list(value)[:6]]
    if isinstance(value, str):
        return clip(value, 120)
    return value


__all__ = ["Evidence", "FileText", "Neighbour", "RunExcerpt", "SignatureNote", "fmt_score"]
