"""Named failure patterns read off a task's recent runs: what the cycle diagnoses and the rules proposer fixes.

Each detector takes one `TaskHistory` (the task's config, its recent runs newest last, their scores, the
prompt template's text, the `requires` of the tasks that consume its outputs) and returns a `Signature`
or None. `DETECTORS` maps names to detectors so the cycle can ask for one; `detect_signatures` runs them all.

A per-run pattern (truncated, fences, ...) counts as a signature when it is *recurring*: the newest run
shows it, or at least half the window does. One old bad run that a later fix cured does not fire.
Evidence quotes are at most 200 characters (`checks.clip`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any, Literal

from domain.checks import (
    clip,
    contract_checks,
    count_blocks,
    count_bullets,
    find_copied_lines,
    find_fences,
    find_instruction_leaks,
    find_placeholders,
    find_prompt_slots,
    is_truncated,
    missing_sections,
    near_identical,
    overflowed,
    similarity,
    thinking_burned,
)
from domain.config import Requires, TaskConfig
from domain.runs import RunResult

Lever = Literal["prompt", "config", "script", "model", "data", "postprocess"]
Severity = Literal["low", "medium", "high"]
SEVERITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
DEAD_AFTER = 3  # runs in a row without writing a declared output before a task counts as dead
IDENTICAL_STREAK = 3  # consecutive near-identical outputs before output counts as stale
_FORMAT_CHECKS = frozenset({"min_words", "max_words", "sections", "blocks", "json_schema", "truncated"})


@dataclass(frozen=True)
class RunView:
    """The parts of a run the detectors read; built from a `RunResult`, an ingested log line or a projection."""

    run_id: str
    task: str
    output: str
    done_reason: str = "stop"
    started: str = ""  # ISO-8601 UTC
    model: str = ""
    status: str = "ok"
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    num_ctx: int | None = None
    num_predict: int | None = None
    artifacts: tuple[str, ...] = ()
    context: str = ""  # the collected data the prompt carried; copying it is not copying an example
    failing: tuple[str, ...] = ()  # names of the checks this run failed

    @classmethod
    def from_run(cls, run: RunResult, failing: Iterable[str] = ()) -> RunView:
        def opt(name: str) -> int | None:
            value = run.options.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            run_id=run.run_id,
            task=run.task,
            output=run.output,
            done_reason=run.done_reason,
            started=run.started,
            model=run.model,
            status=run.status,
            prompt_tokens=run.prompt_tokens,
            output_tokens=run.output_tokens,
            thinking_tokens=run.thinking_tokens,
            num_ctx=run.num_ctx or opt("num_ctx"),
            num_predict=run.num_predict or opt("num_predict"),
            artifacts=tuple(run.artifacts),
            context=run.context,
            failing=tuple(failing),
        )

    @property
    def words(self) -> int:
        return len(self.output.split())

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TaskHistory:
    """Everything the detectors may look at for one task."""

    task: str
    config: TaskConfig
    runs: Sequence[RunView]  # recent runs, newest last
    scores: Mapping[str, float] = field(default_factory=dict)  # run_id -> combined score
    prompt_text: str = ""  # the prompt template as written (before rendering); needed by copied_example
    consumers: Mapping[str, Requires] = field(default_factory=dict)  # downstream task -> what it requires
    dead_after: int = DEAD_AFTER


@dataclass(frozen=True)
class Signature:
    name: str
    task: str
    severity: Severity
    lever: Lever  # where the fix most likely lives
    summary: str  # one line for a person
    evidence: dict[str, Any] = field(default_factory=dict)  # run ids, counts, excerpts (≤ 200 chars)


Detector = Callable[[TaskHistory], "Signature | None"]


def _recurring(runs: Sequence[RunView], hit: Callable[[RunView], bool]) -> list[RunView]:
    """The runs that show a pattern, if it is current (newest run) or common (half the window); else none."""
    flags = [hit(r) for r in runs]
    hits = [r for r, f in zip(runs, flags, strict=True) if f]
    if hits and (flags[-1] or 2 * len(hits) >= len(runs)):
        return hits
    return []


def _base(h: TaskHistory, hits: Sequence[RunView]) -> dict[str, Any]:
    return {"run_ids": [r.run_id for r in hits], "count": len(hits), "runs": len(h.runs)}


def _sig(h: TaskHistory, name: str, severity: Severity, lever: Lever, summary: str, **evidence: Any) -> Signature:
    return Signature(name, h.task, severity, lever, clip(summary), evidence)


# ---- output-level patterns ----------------------------------------------------------------------


def truncated(h: TaskHistory) -> Signature | None:
    hits = _recurring(h.runs, lambda r: is_truncated(r.done_reason))
    if not hits:
        return None
    last = hits[-1]
    return _sig(
        h,
        "truncated",
        "high",
        "config",
        f"{len(hits)}/{len(h.runs)} runs stopped at the token limit (num_predict {last.num_predict or 'unset'})",
        **_base(h, hits),
        output_tokens=[r.output_tokens for r in hits],
        thinking_tokens=[r.thinking_tokens for r in hits],
        num_predict=last.num_predict,
        tail=clip(last.output[-200:]),
    )


def context_overflow(h: TaskHistory) -> Signature | None:
    hits = _recurring(h.runs, lambda r: overflowed(r.prompt_tokens, r.num_ctx, r.done_reason))
    if not hits:
        return None
    last = hits[-1]
    lever: Lever = "script" if h.config.collect else "config"  # the seed's fix: head -80 → head -40
    return _sig(
        h,
        "context_overflow",
        "high",
        lever,
        f"prompt filled the context window in {len(hits)}/{len(h.runs)} runs "
        f"({last.prompt_tokens} tokens, num_ctx {last.num_ctx or 'unset'})",
        **_base(h, hits),
        prompt_tokens=[r.prompt_tokens for r in hits],
        num_ctx=last.num_ctx,
        context_chars=len(last.context),
        collect=h.config.collect,
    )


def thinking_burn(h: TaskHistory) -> Signature | None:
    hits = _recurring(h.runs, lambda r: thinking_burned(r.thinking_tokens, r.num_predict))
    if not hits:
        return None
    last = hits[-1]
    return _sig(
        h,
        "thinking_burn",
        "medium",
        "config",
        f"thinking used {last.thinking_tokens} of num_predict {last.num_predict} tokens "
        f"in {len(hits)}/{len(h.runs)} runs",
        **_base(h, hits),
        thinking_tokens=[r.thinking_tokens for r in hits],
        num_predict=last.num_predict,
        think=h.config.options.think,
    )


def empty(h: TaskHistory) -> Signature | None:
    hits = _recurring(h.runs, lambda r: r.ok and not r.output.strip())
    if not hits:
        return None
    lever: Lever = "prompt"
    if any(thinking_burned(r.thinking_tokens, r.num_predict) or r.thinking_tokens for r in hits):
        lever = "config"  # thinking ate the budget before any answer
    elif h.config.collect and not any(r.context.strip() for r in hits):
        lever = "script"  # nothing collected, nothing said
    return _sig(
        h,
        "empty",
        "high",
        lever,
        f"{len(hits)}/{len(h.runs)} runs produced no output",
        **_base(h, hits),
        thinking_tokens=[r.thinking_tokens for r in hits],
        context_chars=[len(r.context) for r in hits],
    )


def code_fences(h: TaskHistory) -> Signature | None:
    if not h.config.expect.prose:
        return None
    hits = _recurring(h.runs, lambda r: bool(find_fences(r.output)))
    if not hits:
        return None
    fences = find_fences(hits[-1].output)
    return _sig(
        h,
        "code_fences",
        "medium",
        "prompt",
        f"markdown code fences in prose output in {len(hits)}/{len(h.runs)} runs",
        **_base(h, hits),
        fence_lines=len(fences),
        first=clip(fences[0][1]),
    )


def placeholder_leak(h: TaskHistory) -> Signature | None:
    prose = h.config.expect.prose

    def slots_of(run: RunView) -> list[str]:
        return find_placeholders(run.output, prose) + find_prompt_slots(run.output, h.prompt_text, prose)

    hits = _recurring(h.runs, lambda r: bool(slots_of(r)))
    if not hits:
        return None
    slots = list(dict.fromkeys(s for r in hits for s in slots_of(r)))
    in_prompt = [s for s in slots if s in h.prompt_text]
    return _sig(
        h,
        "placeholder_leak",
        "medium",
        "prompt",
        f"literal template slots in {len(hits)}/{len(h.runs)} runs: {', '.join(slots[:5])}",
        **_base(h, hits),
        slots=[clip(s) for s in slots[:10]],
        in_prompt=[clip(s) for s in in_prompt[:10]],
    )


def instruction_leak(h: TaskHistory) -> Signature | None:
    hits = _recurring(h.runs, lambda r: bool(find_instruction_leaks(r.output, h.prompt_text)))
    if not hits:
        return None
    leaks = list(dict.fromkeys(s for r in hits for s in find_instruction_leaks(r.output, h.prompt_text)))
    return _sig(
        h,
        "instruction_leak",
        "medium",
        "prompt",
        f"formatting instructions echoed into the output in {len(hits)}/{len(h.runs)} runs: {leaks[0]}",
        **_base(h, hits),
        leaks=[clip(s) for s in leaks[:5]],
    )


def copied_example(h: TaskHistory) -> Signature | None:
    if not h.prompt_text.strip():
        return None
    hits = _recurring(h.runs, lambda r: bool(find_copied_lines(r.output, h.prompt_text, r.context)))
    if not hits:
        return None
    lines = list(dict.fromkeys(s for r in hits for s in find_copied_lines(r.output, h.prompt_text, r.context)))
    return _sig(
        h,
        "copied_example",
        "high",
        "prompt",
        f"output reproduces the prompt's own text in {len(hits)}/{len(h.runs)} runs: {lines[0]!r}",
        **_base(h, hits),
        copied=[clip(s) for s in lines[:5]],
        identical_streak=_identical_streak(h.runs),
    )


def _identical_streak(runs: Sequence[RunView]) -> int:
    """How many of the newest runs in a row have (nearly) the newest run's output."""
    if not runs or not runs[-1].output.strip():
        return 0
    newest = runs[-1].output
    streak = 0
    for run in reversed(runs):
        if not run.output.strip() or not near_identical(run.output, newest):
            break
        streak += 1
    return streak


def identical_across_days(h: TaskHistory) -> Signature | None:
    streak = _identical_streak(h.runs)
    if streak < IDENTICAL_STREAK:
        return None
    same = list(h.runs[-streak:])
    contexts = {r.context for r in same}
    if len(contexts) == 1 and next(iter(contexts)).strip():
        return None  # the same input gave the same output: determinism, not degeneration
    others = [m for m in h.config.candidates if m != h.config.model]
    lever: Lever = "model" if others else "prompt"  # the seed's seeder: a model that cannot follow the format
    return _sig(
        h,
        "identical_across_days",
        "high",
        lever,
        f"the last {streak} runs produced the same output",
        **_base(h, same),
        days=sorted({r.started[:10] for r in same if r.started}),
        min_similarity=round(min(similarity(r.output, same[-1].output) for r in same), 3),
        excerpt=clip(same[-1].output),
    )


def format_miss(h: TaskHistory) -> Signature | None:
    spec = h.config.expect.blocks
    if spec is None:
        return None
    hits = _recurring(h.runs, lambda r: r.ok and bool(r.output.strip()) and count_blocks(r.output, spec)[0] == 0)
    if not hits:
        return None
    return _sig(
        h,
        "format_miss",
        "high",
        "prompt",
        f"no block matching {spec.regex!r} in {len(hits)}/{len(h.runs)} runs",
        **_base(h, hits),
        regex=spec.regex,
        excerpt=clip(hits[-1].output),
    )


# ---- cross-run and cross-task patterns ----------------------------------------------------------


def too_short_for_consumer(h: TaskHistory) -> Signature | None:
    short: dict[str, Any] = {}
    all_hits: dict[str, RunView] = {}
    for consumer, req in sorted(h.consumers.items()):
        hits = _recurring(h.runs, _short_for(req))
        if not hits:
            continue
        all_hits.update((r.run_id, r) for r in hits)
        short[consumer] = {
            "requires": req.model_dump(exclude_defaults=True),
            "observed": {r.run_id: _shortfalls(r, req) for r in hits},
        }
    if not short:
        return None
    hits = [r for r in h.runs if r.run_id in all_hits]
    lever: Lever = "config" if any(is_truncated(r.done_reason) for r in hits) else "prompt"
    words = [r.words for r in hits]
    return _sig(
        h,
        "too_short_for_consumer",
        "high",
        lever,
        f"output too small for {', '.join(short)} ({min(words)}–{max(words)} words)",
        **_base(h, hits),
        consumers=short,
    )


def _short_for(req: Requires) -> Callable[[RunView], bool]:
    return lambda r: r.ok and bool(_shortfalls(r, req))


def _shortfalls(run: RunView, req: Requires) -> dict[str, Any]:
    """What this run's output lacks for one consumer: {"words": 241, ...}; empty when it is enough."""
    lacks: dict[str, Any] = {}
    if req.min_words is not None and run.words < req.min_words:
        lacks["words"] = run.words
    if req.min_tokens is not None and run.output_tokens < req.min_tokens:
        lacks["tokens"] = run.output_tokens
    if req.min_facts is not None and count_bullets(run.output) < req.min_facts:
        lacks["facts"] = count_bullets(run.output)
    if req.sections and (missing := missing_sections(run.output, req.sections)):
        lacks["missing_sections"] = missing
    return lacks


def dead_task(h: TaskHistory) -> Signature | None:
    cfg, n = h.config, max(1, h.dead_after)
    if not cfg.outputs or len(h.runs) < n or any(r.artifacts for r in h.runs[-n:]):
        return None
    last = list(h.runs[-n:])
    lever: Lever
    if not any(r.ok for r in last):
        lever = "script"  # every run failed before writing
    elif cfg.postprocess is None and cfg.expect.blocks is not None:
        lever = "postprocess"  # declared blocks with nothing to parse them into files (lesson-distiller)
    elif cfg.postprocess is not None:
        lever = "script"
    else:
        lever = "prompt"
    blocks = [count_blocks(r.output, cfg.expect.blocks)[0] for r in last] if cfg.expect.blocks else None
    return _sig(
        h,
        "dead_task",
        "high",
        lever,
        f"no declared output ({', '.join(cfg.outputs)}) written in the last {n} runs",
        **_base(h, last),
        outputs=list(cfg.outputs),
        statuses=[r.status for r in last],
        postprocess=cfg.postprocess,
        blocks_in_output=blocks,
    )


def wrong_model(h: TaskHistory) -> Signature | None:
    """A model whose runs miss the length/format contract (or score a point lower) while the others pass."""
    by_model: dict[str, list[RunView]] = {}
    for run in h.runs:
        if run.ok and run.model:
            by_model.setdefault(run.model, []).append(run)
    if len(by_model) < 2:
        return None
    misses = {m: [r for r in runs if _misses_contract(r, h)] for m, runs in by_model.items()}
    stats: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for model, runs in sorted(by_model.items()):
        others = [r for m, rs in by_model.items() if m != model for r in rs]
        other_misses = sum(len(misses[m]) for m in by_model if m != model)
        mine, theirs = _mean_score(h, runs), _mean_score(h, others)
        stats[model] = {"runs": len(runs), "contract_misses": len(misses[model]), "mean_score": mine}
        by_contract = (
            len(misses[model]) >= 2
            and 2 * len(misses[model]) >= len(runs)
            and len(others) >= 2
            and 4 * other_misses <= len(others)
        )
        by_score = mine is not None and theirs is not None and mine <= theirs - 1.0
        if by_contract or by_score:
            bad.append(model)
    if not bad or len(bad) == len(by_model):
        return None
    actions = {m: "swap to a passing candidate" if m == h.config.model else "drop from candidates" for m in bad}
    hits = [r for m in bad for r in by_model[m]]
    return _sig(
        h,
        "wrong_model",
        "medium",
        "model",
        f"{', '.join(bad)} miss the contract where other models pass",
        **_base(h, hits),
        models=stats,
        bad=bad,
        actions=actions,
        example=clip(misses[bad[0]][-1].output) if misses[bad[0]] else "",
    )


def _misses_contract(run: RunView, h: TaskHistory) -> bool:
    if set(run.failing) & _FORMAT_CHECKS or is_truncated(run.done_reason):
        return True
    return any(not c.passed for c in contract_checks(run.output, h.config.expect, ()) if c.name in _FORMAT_CHECKS)


def _mean_score(h: TaskHistory, runs: Sequence[RunView]) -> float | None:
    scored = [h.scores[r.run_id] for r in runs if r.run_id in h.scores]
    return round(mean(scored), 3) if len(scored) >= 2 else None


# ---- the catalogue ------------------------------------------------------------------------------

DETECTORS: dict[str, Detector] = {
    "empty": empty,
    "truncated": truncated,
    "context_overflow": context_overflow,
    "thinking_burn": thinking_burn,
    "copied_example": copied_example,
    "identical_across_days": identical_across_days,
    "format_miss": format_miss,
    "code_fences": code_fences,
    "placeholder_leak": placeholder_leak,
    "instruction_leak": instruction_leak,
    "too_short_for_consumer": too_short_for_consumer,
    "dead_task": dead_task,
    "wrong_model": wrong_model,
}


def detect_signatures(history: TaskHistory, only: Iterable[str] | None = None) -> list[Signature]:
    """Every signature the history shows, most severe first (catalogue order breaks ties)."""
    names = list(DETECTORS) if only is None else list(only)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise KeyError(f"unknown signature(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}")
    if not history.runs:
        return []
    found = [s for n in names if (s := DETECTORS[n](history)) is not None]
    order = {n: i for i, n in enumerate(DETECTORS)}
    return sorted(found, key=lambda s: (-SEVERITY_RANK[s.severity], order[s.name]))
