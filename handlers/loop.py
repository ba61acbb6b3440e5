"""Loop mode: chain cycles on the worst task under target until every task reaches it, `patience` cycles in a
row keep nothing, or `max_cycles` ran.

- Quality per task starts at the quality projection's rolling mean; a kept delta adds its verified paired
  effect to the task's estimate (the live score only moves when the task runs again, and the loop should not
  pick a task it just fixed because the projection has not seen a new run yet).
- A task whose cycle found nothing to propose (every proposal rejected or a duplicate) is not picked again in
  this loop: nothing new can be tried until its evidence changes. Such a cycle does not count toward
  `patience` (it tried nothing); discarded, failed and approval-waiting cycles do.
- `jobs > 1` runs cycles in threads on tasks whose files are disjoint (prompt, scripts, inputs, outputs:
  no glob of one overlaps a glob of the other). The store serializes writes; applies are serialized by the
  cycle's lock and still hash-checked, so two deltas to one vault.yml never overwrite each other.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from domain.config import TaskConfig, VaultConfig
from handlers.cycle import CycleDeps, CycleResult, run_cycle
from handlers.verify import Verification
from projections.globs import overlaps


@dataclass
class LoopReport:
    before: dict[str, float | None]
    after: dict[str, float | None]
    results: list[CycleResult] = field(default_factory=list)
    stopped: str = ""

    @property
    def kept(self) -> int:
        return sum(1 for r in self.results if r.kept)


def estimate_after(before: float | None, v: Verification) -> float:
    """A task's quality after a kept delta: its score plus the paired effect measured in verification (the
    candidate arm's mean when the task had no score), capped at 5."""
    if before is None:
        cand = v.candidate
        return sum(sum(x) / len(x) for x in cand.values()) / max(1, len(cand))
    return min(5.0, before + v.decision.effect)


def task_files(task: TaskConfig) -> list[str]:
    """Globs of every file a task reads or writes (its read/write set for parallel scheduling)."""
    files = [task.prompt, *task.inputs, *task.outputs]
    for command in (task.collect, task.postprocess):
        if command:
            try:
                files += [t for t in shlex.split(command) if not t.startswith("-")]
            except ValueError:
                files.append(command)
    if task.rubric:
        files.append(task.rubric)
    return [f.replace("{date}", "*").replace("{name}", "*") for f in files]


def disjoint(a: TaskConfig, b: TaskConfig) -> bool:
    return not any(overlaps(x, y) for x in task_files(a) for y in task_files(b))


def pick(config: VaultConfig, quality: Mapping[str, float | None], target: float, skip: set[str],
         jobs: int) -> list[str]:
    """Up to `jobs` tasks under target, worst first (unscored last), pairwise disjoint."""
    under = [t for t, q in quality.items() if t in config.tasks and t not in skip and config.tasks[t].enabled
             and (q is None or q < target)]
    under.sort(key=lambda t: (quality[t] is None, quality[t] if quality[t] is not None else 0.0, t))
    chosen: list[str] = []
    for t in under:
        if all(disjoint(config.tasks[t], config.tasks[c]) for c in chosen):
            chosen.append(t)
        if len(chosen) >= jobs:
            break
    return chosen


def run_loop(deps: CycleDeps, quality: Mapping[str, float | None], *, target: float, patience: int,
             max_cycles: int | None = None, jobs: int = 1,
             on_result: Callable[[CycleResult], None] = lambda _r: None) -> LoopReport:
    """Chain cycles; `quality` is task -> rolling mean (None: never scored) when the loop starts."""
    config = deps.verify.config
    before = {t: quality.get(t) for t in config.tasks}
    now = dict(before)
    report = LoopReport(before=before, after=now)
    skip: set[str] = set()
    dry = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            if max_cycles is not None and len(report.results) >= max_cycles:
                report.stopped = f"max cycles ({max_cycles}) reached"
                break
            room = jobs if max_cycles is None else min(jobs, max_cycles - len(report.results))
            tasks = pick(config, now, target, skip, room)
            if not tasks:
                left = [t for t, q in now.items() if q is None or q < target]
                report.stopped = (f"every task reached {target:g}" if not left
                                  else f"nothing left to try for {', '.join(sorted(left))}")
                break
            futures = [pool.submit(run_cycle, deps, t, mode="loop", target=target, trigger="loop") for t in tasks]
            for fut in futures:
                r = fut.result()
                report.results.append(r)
                on_result(r)
                if r.kept and r.verification is not None:
                    now[r.task] = estimate_after(now.get(r.task), r.verification)
                if r.outcome in ("nothing", "failed"):
                    skip.add(r.task)
                if r.outcome != "nothing":  # nothing to try costs nothing, and that task is not picked again
                    dry = 0 if r.kept else dry + 1
            if dry >= patience:
                report.stopped = f"{dry} cycles in a row kept nothing (patience {patience})"
                break
    return report
