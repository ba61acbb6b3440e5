"""Loop mode: chain cycles on the worst task under target until every task reaches it, `patience` cycles in a
row keep nothing, or `max_cycles` ran.

- Tasks are tried round-robin, worst first within a round: a task is not tried again before every other task
  under target had as many cycles in this loop, so one stubborn task cannot spend the whole `patience`
  while others wait with fixes the rules know.
- Quality per task starts at the quality projection's rolling mean; a kept delta adds its verified paired
  effect to the task's estimate (the live score only moves when the task runs again, and the loop should not
  pick a task it just fixed because the projection has not seen a new run yet).
- A task whose cycle found nothing to propose (every proposal rejected or a duplicate) is not picked again in
  this loop: nothing new can be tried until its evidence changes. Such a cycle does not count toward
  `patience` (it tried nothing); discarded and failed cycles do.
- With proposers that only ever propose for an open signature (`rules` alone), a task under target that shows
  none is passed over while it shows none: its cycle could only find nothing (a keep elsewhere may open
  something on it, so it is asked again at the next pick). A kept delta's task is picked again only while the kept
  candidate's runs (or live runs since) still show something open.
- When no task under target is left, tasks already at target that still show an open signature are picked,
  fewest cycles first, then worst first, still within `patience`: a script lint, a training-data audit, a
  measured collector fault, a run signature such as thinking that burns the budget without truncating yet,
  or a data-flow finding on an edge (a producer too thin for its consumer, whose own score is fine). Such a
  fault shows in the files, the measurements or the consumer, not in the task's score.
- A stop with tasks left under target says which tasks changed in this loop: their recorded runs predate the
  kept deltas, so they must run again before a new loop can see what is left (`LoopReport.rerun`).
- A kept delta that waits for approval: with an `approve` hook (the benchmark approves at once) the hook's
  result is the cycle's result; without one (the CLI) it stays waiting for a human and is progress, not a
  failure — it does not count toward `patience`, and its task is not picked again (its files will change).
- After a kept delta that edited vault.yml the deps are rebuilt by `reload` (the caller's: `daemon.bootstrap`
  reads the file again and rebuilds what depends on it) so the next cycle verifies against the current file,
  not the one the loop began with.
- `jobs > 1` runs cycles in threads on tasks whose files are disjoint (prompt, scripts, inputs, outputs:
  no glob of one overlaps a glob of the other). The store serializes writes; applies are serialized by the
  cycle's lock and still hash-checked, so two deltas to one vault.yml never overwrite each other.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from domain.config import TaskConfig, VaultConfig
from handlers.cycle import CycleDeps, CycleResult, run_cycle
from handlers.open_signatures import NOTICES, all_findings, open_signatures
from handlers.proposers.chain import SIGNATURE_DRIVEN
from handlers.verify import Verification
from projections.globs import overlaps


@dataclass
class LoopReport:
    before: dict[str, float | None]
    after: dict[str, float | None]
    results: list[CycleResult] = field(default_factory=list)
    stopped: str = ""
    rerun: list[str] = field(default_factory=list)  # tasks changed by a kept delta: their runs are out of date

    @property
    def kept(self) -> int:
        return sum(1 for r in self.results if r.kept)


def estimate_after(before: float | None, v: Verification) -> float | None:
    """A task's quality after a kept delta: its score plus the paired effect measured in verification (the
    candidate arm's mean when the task had no score), capped at 5. A delta verified without runs (training
    data, by its audit) leaves the estimate as it was."""
    cand = v.candidate
    if not cand:
        return before
    if before is None:
        return sum(sum(x) / len(x) for x in cand.values()) / len(cand)
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
         jobs: int, tries: Mapping[str, int] | None = None) -> list[str]:
    """Up to `jobs` tasks under target, fewest cycles in this loop first (`tries`), then worst first (unscored
    last), pairwise disjoint."""
    tries = tries or {}
    under = [t for t, q in quality.items() if t in config.tasks and t not in skip and config.tasks[t].enabled
             and (q is None or q < target)]
    under.sort(key=lambda t: (tries.get(t, 0), quality[t] is None, quality[t] if quality[t] is not None else 0.0, t))
    chosen: list[str] = []
    for t in under:
        if all(disjoint(config.tasks[t], config.tasks[c]) for c in chosen):
            chosen.append(t)
        if len(chosen) >= jobs:
            break
    return chosen


OpenSignatures = Callable[[str], Collection[str]]  # task -> names of its open signatures
Approve = Callable[[CycleResult], CycleResult]
Reload = Callable[[CycleDeps], CycleDeps]


def pick_static(config: VaultConfig, quality: Mapping[str, float | None], skip: set[str], jobs: int,
                open_signatures: OpenSignatures, tries: Mapping[str, int] | None = None) -> list[str]:
    """Up to `jobs` enabled tasks (at target: the under-target ones were picked first) with an open signature,
    fewest cycles in this loop first, then worst first, pairwise disjoint."""
    tries = tries or {}
    ready = [t for t in config.tasks if t not in skip and config.tasks[t].enabled and open_signatures(t)]
    ready.sort(key=lambda t: (tries.get(t, 0), quality.get(t) is None, quality.get(t) or 0.0, t))
    chosen: list[str] = []
    for t in ready:
        if all(disjoint(config.tasks[t], config.tasks[c]) for c in chosen):
            chosen.append(t)
        if len(chosen) >= jobs:
            break
    return chosen


def _open_of(deps: CycleDeps) -> OpenSignatures:
    """Each task's open signatures, read once per task and the data-flow findings once for all tasks of one pick,
    as the cycle's diagnosis reads them (`CycleDeps.reading`: the runs a kept change made stale are not open)."""
    reading = deps.reading()
    found: list[Any] = []
    seen: dict[str, list[str]] = {}

    def names(task: str) -> list[str]:
        if not found:
            found.append(all_findings(reading))
        if task not in seen:
            seen[task] = [n.name for n in open_signatures(task, reading, findings=found[0]) if n.name not in NOTICES]
        return seen[task]

    return names


def signature_driven(deps: CycleDeps) -> bool:
    """Whether every proposer of the deps proposes only for an open signature (the rules without an LLM)."""
    return bool(deps.proposers) and all(name in SIGNATURE_DRIVEN for name, _ in deps.proposers)


def _stop_reason(now: Mapping[str, float | None], config: VaultConfig, target: float, rerun: list[str]) -> str:
    left = sorted(t for t, q in now.items() if (q is None or q < target) and t in config.tasks
                  and config.tasks[t].enabled)
    if not left:
        return f"every task reached {target:g}"
    reason = f"nothing left to try for {', '.join(left)}"
    if rerun:
        reason += (f"; {', '.join(rerun)} changed in this loop and must run again (`autovault run-task TASK`, or "
                   "the daemon on schedule) before a new loop can see what is left")
    return reason


def _edits_config(r: CycleResult) -> bool:
    return r.kept and r.delta is not None and any(e.in_config for e in r.delta.edits)


def run_loop(deps: CycleDeps, quality: Mapping[str, float | None], *, target: float, patience: int,
             max_cycles: int | None = None, jobs: int = 1,
             on_result: Callable[[CycleResult], None] = lambda _r: None, approve: Approve | None = None,
             reload: Reload | None = None, open_signatures: OpenSignatures | None = None,
             catch_up: Callable[[], object] | None = None) -> LoopReport:
    """Chain cycles; `quality` is task -> rolling mean (None: never scored) when the loop starts.

    `approve` decides deltas that wait for approval (None: they wait for a human); `reload` rebuilds the deps
    after a kept vault.yml edit (None: never); `open_signatures` gives a task's open signatures (default:
    `handlers.open_signatures.open_signatures` on the live files, runs since the task's last change, findings and
    its measured collector); `catch_up` folds new events into the read models after each round, so the next
    diagnosis sees the kept candidate's runs (`handlers.since_change.current_history`)."""
    config = deps.verify.config
    before = {t: quality.get(t) for t in config.tasks}
    now = dict(before)
    report = LoopReport(before=before, after=now)
    skip: set[str] = set()
    tries: dict[str, int] = {}
    dry = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            if max_cycles is not None and len(report.results) >= max_cycles:
                report.stopped = f"max cycles ({max_cycles}) reached"
                break
            room = jobs if max_cycles is None else min(jobs, max_cycles - len(report.results))
            config = deps.verify.config
            opened = open_signatures or _open_of(deps)
            quiet: set[str] = set()  # this pick only: a later keep elsewhere may open something on them
            tasks = pick(config, now, target, skip, room, tries)
            while tasks and signature_driven(deps) and (shut := [t for t in tasks if not opened(t)]):
                quiet.update(shut)  # nothing open: a signature-driven proposer has nothing to say
                tasks = pick(config, now, target, skip | quiet, room, tries)
            if not tasks:
                tasks = pick_static(config, now, skip, room, opened, tries)
            if not tasks:
                report.stopped = _stop_reason(now, config, target, report.rerun)
                break
            current = deps
            futures = [pool.submit(run_cycle, current, t, mode="loop", target=target, trigger="loop") for t in tasks]
            reloaded = False
            for fut in futures:
                r = fut.result()
                if r.outcome == "awaiting_approval" and approve is not None:
                    decided = approve(r)
                    decided.verification = decided.verification or r.verification
                    r = decided
                report.results.append(r)
                tries[r.task] = tries.get(r.task, 0) + 1
                on_result(r)
                if r.kept and r.verification is not None:
                    now[r.task] = estimate_after(now.get(r.task), r.verification)
                if r.kept:
                    report.rerun += [t for t in ((r.delta.tasks if r.delta else ()) or (r.task,)) if t not in report.rerun]
                if r.outcome in ("nothing", "failed", "awaiting_approval"):
                    skip.add(r.task)  # nothing new to try, or its files change only when a human decides
                if r.outcome not in ("nothing", "awaiting_approval"):  # neither tried-and-failed: no patience spent
                    dry = 0 if r.kept else dry + 1
                reloaded = reloaded or _edits_config(r)
            if reloaded and reload is not None:
                deps = reload(deps)
            if catch_up is not None:
                catch_up()
            if dry >= patience:
                report.stopped = f"{dry} cycles in a row kept nothing (patience {patience})"
                break
    return report
