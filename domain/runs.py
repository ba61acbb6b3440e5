"""What one execution of a task produced: the facts the judge, the signatures and the events share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Runs of the pipeline itself. `shadow` (a human edit tried in a copy) and `verify` (a cycle's arms) runs are
# evidence, recorded like the others, but they never count as the task's live output or quality.
LIVE_SOURCES = frozenset({"daemon", "log", "cli"})
EVIDENCE_SOURCES = frozenset({"shadow", "verify"})


def score_source(run_source: str) -> str:
    """The `source` a run's score is recorded with: the judge for a live run, the run's own source for evidence,
    so read models that fold scores alone (quality) can leave evidence out."""
    return run_source if run_source in EVIDENCE_SOURCES else "judge"


@dataclass(frozen=True)
class Completion:
    """One model call's answer, backend-neutral."""

    text: str
    done_reason: str  # "stop" | "length" | "error" | backend-specific
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int = 0
    duration_s: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class RunResult:
    """Everything a run did. `output` is the model's text; large texts go to the blob store as hashes."""

    run_id: str
    task: str
    started: str  # ISO-8601 UTC
    status: str  # "ok" | "failed"
    model: str
    options: dict[str, Any]
    output: str
    done_reason: str
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int = 0
    prompt_chars: int = 0
    context: str = ""  # collector stdout after the cap
    read_hashes: dict[str, str] = field(default_factory=dict)  # vault path -> sha256 of every file read
    artifacts: dict[str, str] = field(default_factory=dict)  # vault path -> sha256 of every file written
    durations: dict[str, float] = field(default_factory=dict)  # collect/render/model/postprocess/write
    error: str | None = None
    source: str = "daemon"  # daemon | log | verify | cli
    num_ctx: int | None = None
    num_predict: int | None = None
    blocks: int = 0  # declared `expect.blocks` found in the output
    notes: list[str] = field(default_factory=list)  # non-fatal facts, e.g. "collect: stdout truncated at N bytes"

    @property
    def words(self) -> int:
        return len(self.output.split())

    @property
    def duration_s(self) -> float:
        return sum(self.durations.values())


@dataclass(frozen=True)
class Check:
    """One contract or universal check on a run."""

    name: str  # e.g. "min_words", "truncated", "code_fences"
    passed: bool
    detail: str = ""
    hard: bool = True  # a failed hard check is a guardrail: it vetoes a keep


@dataclass(frozen=True)
class Score:
    """A judge's verdict on a run, 1..5 with reasons."""

    run_id: str
    score: float
    judge: str
    reasons: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]
