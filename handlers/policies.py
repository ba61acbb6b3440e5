"""The daemon's reactions: plain functions over a `Context`, registered in ONE table (`HANDLERS`, at the bottom).

| message          | reaction                                                                                    |
|------------------|---------------------------------------------------------------------------------------------|
| FileEdited       | `Changed(by=human)` with the diff, for every task whose prompt/scripts/rubric/inputs name    |
|                  | the path; then a verification run of each of them is queued                                 |
| ConfigEdited     | `Changed(by=human)` on vault.yml for the tasks whose own config changed (all tasks when only |
|                  | shared sections changed); verification queued for those tasks                               |
| EventsRecorded   | rolling score below `research.threshold` → a cycle (trigger `low_score:<mean>`); new        |
|                  | findings → a cycle with both ends (`handlers.findings.on_finding_detected`)                 |
| Tick             | loop mode inside the research window; the weekly quality gate report (top 3 next fixes from  |
|                  | the LLM proposer when vault.yml lists one, else the rules: `handlers.weekly`)               |
| CycleFinished    | counts towards loop-mode patience; a kept delta queues a live run of its task (its runs are |
|                  | stale: the next cycle must see what the change did); a kept training-data delta queues a    |
|                  | fine-tuning experiment on the new data                                                      |
| EventsRecorded   | (also) a low score on a task with training data queues a fine-tuning experiment             |

Verification after a human edit (decided here): a SHADOW `run_and_judge` of each affected task, run as soon
as the research window allows (at once when `window` is null). Shadow, because a human saving a prompt must
not produce a live briefing at an odd hour; the judged shadow run shows within minutes whether the edit
broke the task, and the next scheduled run verifies it live. Verifications are coalesced per task.

Every cycle request goes through `request_cycle`: only inside the research window, one in flight per task
(an open cycle on record or one queued in this process), and not within `research.cooldown_minutes` of the
task's previous cycle (loop mode excepted: it chains cycles by design and stops on patience instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapters.watch import script_paths
from domain.config import VaultConfig
from domain.quality import TaskQuality
from domain.window import in_window, window_day
from handlers.findings import StartCycle
from handlers.weekly import Complete, TopFixes, render_top, rules_top, scrub_all, top_fixes
from projections.globs import matches

# ---- messages ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEdited:
    path: str  # vault-relative
    before_hash: str | None
    after_hash: str | None
    diff: str
    by: str = "human"  # "cycle": an apply a crash interrupted, finished by `atomic.recover` at start
    cycle_id: str | None = None


@dataclass(frozen=True)
class ConfigEdited:
    path: str  # vault.yml's name
    old: VaultConfig
    new: VaultConfig
    before_hash: str | None
    after_hash: str | None
    diff: str
    by: str = "human"
    cycle_id: str | None = None


@dataclass(frozen=True)
class EventsRecorded:
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Tick:
    now: dt.datetime


@dataclass(frozen=True)
class CycleFinished:
    task: str
    trigger: str
    outcome: str  # kept | discarded | failed | nothing | awaiting_approval | …
    lever: str | None = None  # the delta's lever (data, prompt, model, …), when there was a delta
    cycle: str | None = None


# ---- what the policies need --------------------------------------------------------------------------------


class ChangeStore(Protocol):
    def batch(self) -> Any: ...


@dataclass(frozen=True)
class KeptDelta:
    cycle: str
    task: str
    lever: str
    effect: float | None
    description: str


@dataclass(frozen=True)
class Fix:
    task: str
    rolling: float | None
    signature: str
    lever: str
    summary: str


@dataclass(frozen=True)
class WeekFacts:
    kept: list[KeptDelta]
    regressions: list[tuple[str, float, float]]  # task, last week's mean, this week's mean
    fixes: list[Fix]  # candidates, worst task first (a task's strongest signature first)
    discarded: int = 0


@dataclass
class LoopState:
    """Loop mode's memory for one research window: consecutive cycles that kept nothing, tasks exhausted."""

    window_day: dt.date | None = None
    misses: int = 0
    exhausted: set[str] = field(default_factory=set)
    stopped: bool = False


@dataclass
class Context:
    config: VaultConfig
    store: ChangeStore
    clock: Callable[[], dt.datetime]
    quality: Callable[[], list[TaskQuality]]
    open_cycles: Callable[[], set[str]]  # tasks with a cycle open on record, running or queued here
    last_cycle_start: Callable[[str], dt.datetime | None]
    start_cycle: StartCycle
    queue_verification: Callable[[str], None]
    refresh_findings: Callable[[StartCycle], Any]
    week_facts: Callable[[dt.datetime], WeekFacts]
    state_dir: Path
    log: Callable[[str], None] = lambda _m: None
    complete: Complete | None = None  # the model router, for the weekly gate's LLM proposer (handlers.weekly)
    secrets: Callable[[], Sequence[str]] = lambda: ()  # API keys: scrubbed from the report
    loop: LoopState = field(default_factory=LoopState)
    last_report: dt.datetime | None = None
    queue_run: Callable[[str], None] = lambda _task: None  # a live run of the task, as its schedule would make
    queue_experiment: Callable[[str, str], bool] = lambda _task, _trigger: False  # GPU work (handlers.experiments)


# ---- which tasks a path concerns ---------------------------------------------------------------------------


def affected_tasks(config: VaultConfig, rel: str) -> list[str]:
    """Tasks whose prompt, collector, postprocessor, rubric, input or training-data globs name `rel`; the judge
    rubric concerns every task."""
    if config.judge.rubric == rel:
        return list(config.tasks)
    out = []
    for name, t in config.tasks.items():
        named = {t.prompt, t.rubric, *script_paths(t.collect), *script_paths(t.postprocess)}
        data = [*t.inputs, *([t.training.data] if t.training is not None else [])]
        if rel in named or any(matches(g, rel) for g in data):
            out.append(name)
    return out


def changed_tasks(old: VaultConfig, new: VaultConfig) -> list[str]:
    """Tasks whose own section differs (added ones included); every task when only shared sections changed."""
    names = [n for n, t in new.tasks.items() if n not in old.tasks or old.tasks[n] != t]
    if names:
        return names
    shared = ("judge", "backends", "research", "proposers", "store", "logs", "vault")
    if any(getattr(old, s) != getattr(new, s) for s in shared):
        return list(new.tasks)
    return []


# ---- reactions -----------------------------------------------------------------------------------------------


def record_human_edit(msg: FileEdited, ctx: Context) -> list[str]:
    """One `Changed(by=human)` per affected task, all in one batch; returns those tasks."""
    tasks = affected_tasks(ctx.config, msg.path)
    _record_changes(ctx, tasks, msg.path, msg.before_hash, msg.after_hash, msg.diff, msg.by, msg.cycle_id)
    return tasks


def record_config_edit(msg: ConfigEdited, ctx: Context) -> list[str]:
    tasks = changed_tasks(msg.old, msg.new)
    _record_changes(ctx, tasks, msg.path, msg.before_hash, msg.after_hash, msg.diff, msg.by, msg.cycle_id)
    return tasks


def _record_changes(ctx: Context, tasks: Sequence[str], path: str, before: str | None, after: str | None,
                    diff: str, by: str = "human", cycle_id: str | None = None) -> None:
    if not tasks:
        return
    batch = ctx.store.batch()
    for task in tasks:
        batch.change(task, path, before, after, diff, by, cycle_id)
    batch.commit()
    ctx.log(f"{by} edit of {path}: Changed recorded for {', '.join(tasks)}")


def verify_after_edit(msg: FileEdited | ConfigEdited, ctx: Context) -> None:
    if msg.by != "human":
        return
    tasks = affected_tasks(ctx.config, msg.path) if isinstance(msg, FileEdited) else changed_tasks(msg.old, msg.new)
    for task in tasks:
        if task in ctx.config.tasks and ctx.config.tasks[task].enabled:
            ctx.queue_verification(task)


def in_research_window(config: VaultConfig, now: dt.datetime) -> bool:
    return in_window(config.research.window, now)


def request_cycle(ctx: Context, task: str, trigger: str, tasks: list[str], *, cooldown: bool = True) -> bool:
    """Start a cycle unless the window is closed, one is in flight for the task, or it is cooling down."""
    now = ctx.clock()
    if task not in ctx.config.tasks or not ctx.config.tasks[task].enabled:
        return False
    if not in_research_window(ctx.config, now):
        return False
    if task in ctx.open_cycles():
        return False
    last = ctx.last_cycle_start(task)
    if cooldown and last is not None and now - last < dt.timedelta(minutes=ctx.config.research.cooldown_minutes):
        return False
    ctx.start_cycle(task, trigger, tasks)
    ctx.log(f"cycle requested on {task} ({trigger})")
    return True


def cycle_on_low_score(msg: EventsRecorded, ctx: Context) -> list[str]:
    """Tasks whose rolling mean is below the threshold get a cycle (worst first); returns the tasks started."""
    threshold = ctx.config.research.threshold
    started = []
    for q in ctx.quality():
        if q.rolling_mean is not None and q.rolling_mean < threshold and \
                request_cycle(ctx, q.task, f"low_score:{q.rolling_mean:.2f}", [q.task]):
            started.append(q.task)
    return started


def cycle_on_finding(msg: EventsRecorded, ctx: Context) -> None:
    """Fold the new events into the findings; a new finding asks for a cycle naming both ends."""

    def gated(task: str, trigger: str, tasks: list[str]) -> Any:
        return request_cycle(ctx, task, trigger, tasks)

    ctx.refresh_findings(gated)


def loop_in_window(msg: Tick, ctx: Context) -> str | None:
    """Inside a configured research window, when nothing is in flight: a cycle on the worst task under
    `research.target`; stops for the night after `patience` cycles in a row kept nothing. Without a window
    (null: research at any time) loop mode stays off — it is the nightly batch, not a busy loop."""
    window = ctx.config.research.window
    if window is None or not in_research_window(ctx.config, msg.now):
        return None
    day = window_day(window, msg.now)
    if ctx.loop.window_day != day:
        ctx.loop = LoopState(window_day=day)
    if ctx.loop.stopped or ctx.open_cycles():
        return None
    target = ctx.config.research.target
    for q in ctx.quality():  # worst first; unscored last
        if q.task not in ctx.config.tasks or q.task in ctx.loop.exhausted or not ctx.config.tasks[q.task].enabled:
            continue
        if q.rolling_mean is None or q.rolling_mean >= target:
            continue
        if request_cycle(ctx, q.task, "loop", [q.task], cooldown=False):
            return q.task
    return None


def count_loop_outcome(msg: CycleFinished, ctx: Context) -> None:
    if msg.trigger != "loop":
        return
    if msg.outcome == "kept":
        ctx.loop.misses = 0
        return
    ctx.loop.misses += 1
    if msg.outcome in ("nothing", "failed"):
        ctx.loop.exhausted.add(msg.task)
    if ctx.loop.misses >= ctx.config.research.patience:
        ctx.loop.stopped = True
        ctx.log(f"loop mode: {ctx.loop.misses} cycles in a row kept nothing; stopped until the next window")


def rerun_after_keep(msg: CycleFinished, ctx: Context) -> None:
    """A kept delta changed the task's files: its recorded runs describe files that are gone, so the signatures
    the next cycle (or loop) would work on are stale. Run it again now instead of waiting for its schedule."""
    if msg.outcome == "kept" and msg.task in ctx.config.tasks and ctx.config.tasks[msg.task].enabled:
        ctx.queue_run(msg.task)
        ctx.log(f"{msg.task} changed by a kept cycle: queued to run again")


GATE_SCHEDULE = "weekly mon 07:00"


def weekly_quality_gate(msg: Tick, ctx: Context) -> Path | None:
    """Once a week (Monday 07:00 local, or at the first tick after it was missed): write the report."""
    from domain.schedule import parse_schedule

    last = ctx.last_report or last_report_time(ctx.state_dir, msg.now)
    if last is not None and parse_schedule(GATE_SCHEDULE).next_after(last) > msg.now:
        return None
    if last is None:
        ctx.last_report = msg.now  # first start: the first report is a week of history away
        return None
    path = write_quality_report(ctx, msg.now)
    ctx.last_report = msg.now
    return path


def last_report_time(state_dir: Path, now: dt.datetime) -> dt.datetime | None:
    reports = sorted((state_dir / "reports").glob("quality-*.md"))
    if not reports:
        return None
    return dt.datetime.fromtimestamp(reports[-1].stat().st_mtime, tz=now.tzinfo)


def write_quality_report(ctx: Context, now: dt.datetime) -> Path:
    facts = ctx.week_facts(now - dt.timedelta(days=7))
    secrets = tuple(ctx.secrets())
    top = top_fixes(facts, ctx.config, ctx.complete, secrets)
    path = ctx.state_dir / "reports" / f"quality-{now.date().isoformat()}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    from adapters.atomic import write_atomic

    write_atomic(path, scrub_all(render_report(now.date(), facts, top), secrets))
    ctx.log(f"weekly quality report: {path} (top fixes from {top.source})")
    return path


def render_report(day: dt.date, facts: WeekFacts, top: TopFixes | None = None) -> str:
    """The report's markdown; the top list from `handlers.weekly` (the rules' when `top` is None)."""
    lines = [f"# autovault quality gate — week ending {day.isoformat()}", ""]
    lines += [f"## Kept deltas ({len(facts.kept)}; {facts.discarded} discarded)", ""]
    lines += [f"- `{k.task}` — {k.lever}: {k.description} (effect {_fmt(k.effect, signed=True)}, cycle {k.cycle})"
              for k in facts.kept] or ["- none"]
    lines += ["", "## Regressions (this week's mean score below last week's)", ""]
    lines += [f"- `{t}`: {_fmt(a)} → {_fmt(b)}" for t, a, b in facts.regressions] or ["- none"]
    lines += ["", "## Top 3 recommended next fixes", ""]
    lines += render_top(top or rules_top(facts))
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


# ---- the one table ------------------------------------------------------------------------------------------

Handler = Callable[[Any, Context], Any]

def experiment_on_low_score(msg: EventsRecorded, ctx: Context) -> list[str]:
    """A task with training data whose rolling score is under the threshold also gets a fine-tuning experiment
    (inside the research window; the daemon queues one per task and dataset at most, `queue_experiment`)."""
    queued = []
    for q in ctx.quality():
        tc = ctx.config.tasks.get(q.task)
        if tc is None or tc.training is None or not tc.enabled or q.rolling_mean is None:
            continue
        if q.rolling_mean < ctx.config.research.threshold and in_research_window(ctx.config, ctx.clock()) and \
                ctx.queue_experiment(q.task, f"low_score:{q.rolling_mean:.2f}"):
            queued.append(q.task)
    return queued


def experiment_after_data_delta(msg: CycleFinished, ctx: Context) -> bool:
    """A kept training-data delta was decided by its audit alone: train on the new data to measure it."""
    tc = ctx.config.tasks.get(msg.task)
    if msg.outcome != "kept" or msg.lever != "data" or tc is None or tc.training is None:
        return False
    return ctx.queue_experiment(msg.task, f"data_delta:{msg.cycle or '?'}")


HANDLERS: dict[type, list[Handler]] = {
    FileEdited: [record_human_edit, verify_after_edit],
    ConfigEdited: [record_config_edit, verify_after_edit],
    EventsRecorded: [cycle_on_low_score, cycle_on_finding, experiment_on_low_score],
    Tick: [loop_in_window, weekly_quality_gate],
    CycleFinished: [count_loop_outcome, rerun_after_keep, experiment_after_data_delta],
}


def handle(msg: Any, ctx: Context) -> None:
    """Every handler registered for the message's type, in order; one failing does not stop the others."""
    for handler in HANDLERS.get(type(msg), []):
        try:
            handler(msg, ctx)
        except Exception as e:  # a policy bug must not take the daemon down; it is logged
            ctx.log(f"policy {handler.__name__} failed on {type(msg).__name__}: {type(e).__name__}: {e}")
