"""Run a task, judge the run, record both; and read a task's failure signatures.

Plain functions over injected dependencies: the runner, the store, the model call and the run history
are whatever `daemon.bootstrap` wired (real adapters, or doubles in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.config import Requires, VaultConfig
from domain.runs import RunResult, Score, score_source
from domain.signatures import RunView, Signature, TaskHistory, detect_signatures
from handlers.judge import JudgeResult, judge_run

Complete = Callable[..., Any]


class Runner(Protocol):
    def run(self, name: str, task: Any, *, shadow: Any = False, source: str = "cli") -> RunResult: ...


class RunStore(Protocol):
    def record_run(self, result: RunResult, cycle_id: str | None = None) -> Any: ...

    def record_score(self, task: str, score: Score, source: str = "judge") -> Any: ...

    def record_scored_run(self, result: RunResult, score: Score, source: str, cycle_id: str | None = None) -> Any: ...


class History(Protocol):
    def views(self, task: str, limit: int = 10) -> list[RunView]: ...

    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]: ...

    def scores(self, task: str) -> dict[str, float]: ...


ReadText = Callable[[str | None], str]


@dataclass(frozen=True)
class TaskOutcome:
    run: RunResult
    judged: JudgeResult | None


def judge(run: RunResult, config: VaultConfig, complete: Complete | None, history: History,
          read_text: ReadText) -> JudgeResult:
    task = config.task(run.task)
    previous = history.previous_outputs(run.task, task.expect.distinct_from_previous, exclude=run.run_id)
    rubric = read_text(task.rubric or config.judge.rubric) or None
    return judge_run(run, task, config.judge, complete, previous, rubric)


def run_and_judge(name: str, *, config: VaultConfig, runner: Runner, store: RunStore, complete: Complete,
                  history: History, read_text: ReadText, shadow: bool = False, judge_it: bool = True,
                  source: str = "cli") -> TaskOutcome:
    """One task, end to end. A shadow run is recorded as `source=verify`-like evidence, never as live output."""
    task = config.task(name)
    run = runner.run(name, task, shadow=shadow, source="shadow" if shadow else source)
    store.record_run(run)
    judged = judge(run, config, complete, history, read_text) if judge_it else None
    if judged is not None:
        store.record_score(name, judged.score, score_source(run.source))
    return TaskOutcome(run, judged)


def record_verification_run(store: RunStore, run: RunResult, score: Score, cycle: str) -> None:
    """A cycle's arm run and the score its decision used, in one transaction: every sample behind a Verified
    event is on the record."""
    store.record_scored_run(run, score, score_source(run.source), cycle_id=cycle)


def run_from_view(view: RunView) -> RunResult:
    """A recorded run in the shape the judge takes (for re-judging what is already on record)."""
    options = {k: v for k, v in (("num_ctx", view.num_ctx), ("num_predict", view.num_predict)) if v is not None}
    return RunResult(
        run_id=view.run_id, task=view.task, started=view.started, status=view.status, model=view.model,
        options=options, output=view.output, done_reason=view.done_reason, prompt_tokens=view.prompt_tokens,
        output_tokens=view.output_tokens, thinking_tokens=view.thinking_tokens, context=view.context,
        artifacts=dict.fromkeys(view.artifacts, ""), num_ctx=view.num_ctx, num_predict=view.num_predict,
    )


def consumers_of(config: VaultConfig, producer: str, reads: Callable[[str, str], bool]) -> dict[str, Requires]:
    """Downstream tasks whose inputs match one of `producer`'s outputs, with what they require."""
    outputs = config.tasks[producer].outputs
    return {
        name: task.requires
        for name, task in config.tasks.items()
        if name != producer and any(reads(out, glob) for out in outputs for glob in task.inputs)
    }


def task_signatures(name: str, *, config: VaultConfig, history: History, read_text: ReadText,
                    reads: Callable[[str, str], bool], window: int = 8) -> list[Signature]:
    task = config.task(name)
    return detect_signatures(TaskHistory(
        task=name, config=task, runs=history.views(name, window), scores=history.scores(name),
        prompt_text=read_text(task.prompt), consumers=consumers_of(config, name, reads),
    ))


def all_signatures(names: Iterable[str], **deps: Any) -> dict[str, list[Signature]]:
    return {name: task_signatures(name, **deps) for name in names}
