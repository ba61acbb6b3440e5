"""`make bench-faults`: the faults planted in two vaults, found and fixed by the improvement loop — one line per vault.

Each vault (`benchmarks.fault_vault`: the example vault and the household vault, each with its FAULTS.md) is copied
into a temp folder, its vault.yml rewritten for the benchmark, and `backends.ollama.host` pointed at a loopback
Ollama-protocol server that behaves like flawed small models (`benchmarks.fault_models.FaultServer` serving
`testbed.doubles.FlawedModels`, a behaviour spec that reacts to what a prompt *is*, never to what a proposer writes),
reached through the real ollama client. The heartbeat logs are ingested, so history exists. Then, through the
same code the CLI uses:

- found: before the loop, the product reports one of the fault's signatures for its task
  (`handlers.open_signatures.open_signatures`: run signatures, collector lints and traces, the data audit, data-flow
  findings — what `status --signatures` shows);
- the loop runs in process (`handlers.loop.run_loop`); a delta that waits for approval (scripts/**) is approved by
  the benchmark at once through the loop's `approve` hook and reported as approved;
- fixed: after the loop every task runs again (live, producers first, the vault's next day with a fixed seed) and
  is judged; the fault is fixed when none of its signatures is open any more, the checks it broke pass on that
  run, the models it names are gone from the pool, and (training data) the audit passes with every example the
  loop added passing the task's contract. Which kept deltas touched the task is reported beside it; nothing is
  credited to a rule by name;
- harmful: a kept delta with a negative verified effect, or after which its task (or a task reading its outputs)
  scores lower on the rerun than on the same day's run before the loop;
- cycles: every loop cycle, and cycles per fixed fault.

Prints a table per vault, why each unfixed fault is not fixed, and one line per vault:
`faults: vault=NAME kinds=K found=F fixed=X harmful=H cycles=C per_fix=P faults_found=a/n faults_fixed=b/n calls=M`
(F and X count kinds whose every planted fault was found / fixed). With no `--vault` both vaults run at once, each
in its own process.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.config_loader import load_config
from benchmarks.fault_models import FaultServer
from benchmarks.fault_vault import REPO, RUN_SEED, SEED, VAULTS, BenchVault, Fault, make_bench_vault
from daemon.bootstrap import Services, bootstrap, cycle_deps, diagnose_deps, register_tasks, reloader
from daemon.dataflow import refresh_after_events
from domain.checks import contract_checks, universal_checks
from domain.config import TaskConfig, VaultConfig
from domain.runs import Check, RunResult, score_source
from domain.scoring import FLOOR, penalty
from handlers.cycle import CycleDeps, CycleResult, approve_cycle
from handlers.diagnose_static import audit_data, parse_jsonl
from handlers.ingest import ingest_path
from handlers.judge import judge_run
from handlers.loop import LoopReport, run_loop
from handlers.open_signatures import open_signatures
from handlers.tasks import consumers_of
from handlers.verify_arms import outputs_check
from projections import globs
from projections.quality import quality_table
from testbed.doubles.flawed_models import FlawedModels

SUMMARY_PREFIX = "faults: vault="


@dataclass
class Step:
    """One loop cycle as the benchmark saw it."""

    n: int
    result: CycleResult
    approved: CycleResult | None = None
    calls: int = 0

    @property
    def kept(self) -> bool:
        return self.result.kept or (self.approved is not None and self.approved.kept)

    @property
    def tasks(self) -> set[str]:
        d = self.result.delta
        return set(d.tasks or (self.result.task,)) if d is not None else {self.result.task}

    def label(self) -> str:
        d = self.result.delta
        lever = d.lever if d is not None else "?"
        return f"c{self.n:02d} {lever}" + (" approved" if self.approved is not None else "")


@dataclass
class FaultRow:
    fault: Fault
    found_as: list[str] = field(default_factory=list)  # the fault's signatures the product reported before the loop
    open_after: list[str] = field(default_factory=list)  # ... and still reports after the rerun
    failing_after: list[str] = field(default_factory=list)  # the fault's checks failing on the rerun
    present_after: list[str] = field(default_factory=list)  # pool models that should be gone
    data_problems: list[str] = field(default_factory=list)
    fixed_by: list[Step] = field(default_factory=list)  # kept deltas that touched the task
    rerun_status: str = "ok"

    @property
    def found(self) -> bool:
        return bool(self.found_as)

    @property
    def fixed(self) -> bool:
        return (self.found and self.rerun_status == "ok" and not self.open_after and not self.failing_after
                and not self.present_after and not self.data_problems)


@dataclass
class Bench:
    cfg_path: Path
    svc: Services
    deps: CycleDeps
    steps: list[Step] = field(default_factory=list)
    approved: dict[str, CycleResult] = field(default_factory=dict)  # cycle key -> what approving it did
    say: Callable[[str], None] = lambda _m: None

    def reload(self, deps: CycleDeps) -> CycleDeps:
        """The loop's reload hook, the product's one reload (`daemon.bootstrap.reloader`): a kept delta changed
        vault.yml, so the next cycles and approvals see the live config."""
        self.deps = reloader(self.svc, lambda _m: None)(deps)
        return self.deps

    def approve(self, r: CycleResult) -> CycleResult:
        """The loop's approve hook: the benchmark approves every delta that waits (scripts/**) at once."""
        a = approve_cycle(self.deps, r.key)
        self.approved[r.key] = a
        return a

    def on_result(self, r: CycleResult) -> None:
        step = Step(len(self.steps) + 1, r, approved=self.approved.get(r.key),
                    calls=r.verification.cost.model_calls if r.verification is not None else 0)
        self.steps.append(step)
        what = r.delta.description if r.delta is not None else "-"
        extra = " (approved by the bench)" if step.approved is not None else ""
        self.say(f"c{step.n:02d} [{r.task}] {r.outcome}{extra}: {what} — {r.reason}")


# ---- runs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One run and its judgement (the task's declared contract, the universal checks, outputs_written)."""

    run: RunResult
    score: float
    checks: list[Check]

    def failing(self, names: Collection[str]) -> list[str]:
        return [c.name for c in self.checks if c.name in names and not c.passed]


def _seeded(tc: TaskConfig) -> TaskConfig:
    return tc.model_copy(update={"options": tc.options.model_copy(update={"seed": RUN_SEED})})


def judged(svc: Services, task: str, run: RunResult) -> tuple[float, list[Check], Any]:
    cfg = svc.config
    tc = cfg.task(task)
    previous = svc.history.previous_outputs(task, tc.expect.distinct_from_previous, exclude=run.run_id) \
        if tc.expect.distinct_from_previous else []
    rubric = svc.read_vault_text(tc.rubric or cfg.judge.rubric) or None
    result = judge_run(run, tc, cfg.judge, svc.models.complete, previous, rubric)
    checks, score = list(result.score.checks), float(result.score.score)
    written = outputs_check(run, tc)
    if written is not None:
        checks.append(written)
        score = max(FLOOR, score - penalty(written))
    return score, checks, result.score


def probe(svc: Services, task: str, day: str) -> Probe:
    """Before the loop: the task run once in a shadow on `day` with the fixed seed, judged, not recorded."""
    run = svc.runner.run(task, _seeded(svc.config.task(task)), date=day, shadow=True, source="bench")
    score, checks, _ = judged(svc, task, run)
    return Probe(run, score, checks)


def rerun(svc: Services, task: str, day: str) -> Probe:
    """After the loop: the task runs again live (as the daemon would on `day`), recorded and judged."""
    run = svc.runner.run(task, _seeded(svc.config.task(task)), date=day, source="daemon")
    svc.store.record_run(run)
    score, checks, verdict = judged(svc, task, run)
    svc.store.record_score(task, verdict, score_source(run.source))
    return Probe(run, score, checks)


def producers_first(cfg: VaultConfig, tasks: Sequence[str]) -> list[str]:
    """Tasks ordered so that a task runs after every task whose outputs it reads (cycles broken by name)."""
    done: list[str] = []
    pending = sorted(tasks)
    while pending:
        ready = [t for t in pending if not any(p in pending and p != t and t in consumers_of(cfg, p, globs.overlaps)
                                               for p in pending)] or pending[:1]
        done += ready
        pending = [t for t in pending if t not in ready]
    return done


def signatures(svc: Services, tasks: Collection[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> open signature name -> its evidence, as the product reports them now."""
    svc.projections.catch_up()
    refresh_after_events(svc)
    deps = diagnose_deps(svc)
    return {t: {s.name: dict(s.evidence) for s in open_signatures(t, deps)} for t in tasks}


def data_texts(cfg: VaultConfig, tc: TaskConfig) -> dict[str, str]:
    if tc.training is None:
        return {}
    return {p.relative_to(cfg.root).as_posix(): p.read_text(encoding="utf-8")
            for g in globs.to_pathlib(tc.training.data) for p in sorted(cfg.root.glob(g)) if p.is_file()}


def data_problems(cfg: VaultConfig, task: str, before: dict[str, str]) -> list[str]:
    """What is still wrong with a task's training data: the audit, and every example the loop added that fails the
    task's contract or a universal hard check (a leaked placeholder, a fence)."""
    tc = cfg.task(task)
    after = data_texts(cfg, tc)
    if tc.training is None:
        return ["the task has no training data any more"]
    audit = audit_data(after, tc.training.min_examples, tc.training.max_class_share, tc.training.label_field)
    problems = ([f"{audit.examples} examples < min_examples {audit.min_examples}"] if audit.too_few else []) + \
        ([f"label share {audit.dominant}" if audit.dominant else "imbalanced"] if audit.imbalanced else [])
    old = {line for text in before.values() for line in text.splitlines()}
    for path, text in after.items():
        for n, obj in parse_jsonl(text):
            line = text.splitlines()[n - 1]
            if line in old or obj is None:
                continue
            answer = str(next((obj[k] for k in ("completion", "output", "response", "answer") if k in obj), ""))
            run = RunResult(run_id="mined", task=task, started="", status="ok", model="", options={}, output=answer,
                            done_reason="stop", prompt_tokens=0, output_tokens=len(answer.split()))
            bad = [c.name for c in [*contract_checks(answer, tc.expect, ()), *universal_checks(run, prose=tc.expect.prose)]
                   if c.hard and not c.passed and c.name not in ("truncated", "context_overflow", "failed")]
            if bad:
                problems.append(f"{path}:{n} added, fails {', '.join(bad)}")
    return problems


# ---- the benchmark ------------------------------------------------------------------------------------------


def setup(dest: Path, host: str, only: Collection[str] | None = None, vault: BenchVault = SEED
          ) -> tuple[Path, Services]:
    cfg_path = make_bench_vault(vault, dest, host, only)
    svc = bootstrap(load_config(cfg_path, {}), env={}, store_url=f"sqlite:///{dest / 'events.db'}")
    register_tasks(svc.store, svc.config)
    logs = svc.config.root / (svc.config.logs or "heartbeat/logs")
    ingest_path(logs, svc.store)
    svc.projections.catch_up()
    refresh_after_events(svc)
    return cfg_path, svc


def harmful_keeps(steps: list[Step], cfg: VaultConfig, before: dict[str, Probe], after: dict[str, Probe]) -> list[str]:
    out = []
    for s in steps:
        if not s.kept or s.result.delta is None:
            continue
        v = s.approved.verification if s.approved is not None and s.approved.verification else s.result.verification
        readers = {c for t in s.tasks if t in cfg.tasks for c in consumers_of(cfg, t, globs.overlaps)}
        worse = sorted(t for t in s.tasks | readers if t in before and t in after
                       and (after[t].score < before[t].score - 1e-9
                            or (after[t].run.status != "ok" and before[t].run.status == "ok")))
        if v is not None and v.decision.effect < 0:
            out.append(f"c{s.n:02d} {s.result.task}: verified effect {v.decision.effect:+.2f}")
        elif worse:
            out.append(f"c{s.n:02d} {s.result.task}: after it, " + ", ".join(
                f"{t} {before[t].score:.2f}→{after[t].score:.2f}" for t in worse))
    return out


def why_not(row: FaultRow, steps: list[Step], report: LoopReport, shown: dict[str, dict[str, Any]]) -> str:
    f = row.fault
    if not row.found:
        seen = ", ".join(sorted(shown.get(f.task, {}))) or "nothing"
        return f"not found: the product reports {seen} for {f.task}, none of {'/'.join(f.shows)}"
    parts = []
    if row.rerun_status != "ok":
        parts.append(f"the rerun {row.rerun_status}")
    if row.open_after:
        parts.append(f"still open after the rerun: {', '.join(row.open_after)}")
    if row.failing_after:
        parts.append(f"the rerun fails {', '.join(row.failing_after)}")
    if row.present_after:
        parts.append(f"still in the pool: {', '.join(row.present_after)}")
    parts += row.data_problems[:3]
    on_task = [s for s in steps if f.task in s.tasks]
    if not on_task:
        parts.append(f"the loop never worked on {f.task} (stopped: {report.stopped[:120]})")
    elif not any(s.kept for s in on_task):
        last = on_task[-1]
        parts.append(f"no kept delta on it; last c{last.n:02d} {last.result.outcome}: {last.result.reason[:140]}")
    return "; ".join(parts)


def table(rows: list[FaultRow], harm: dict[str, int]) -> list[str]:
    """One line per fault; the last column names every kept delta on its task (what the rerun was made after)."""
    head = f"{'id':4} {'kind':30} {'task':22} {'found as':34} {'fixed':5} {'harm':>4}  kept deltas on the task"
    lines = [head, "-" * len(head)]
    for r in rows:
        f = r.fault
        found = ",".join(r.found_as) if r.found else "no"
        by = ", ".join(s.label() for s in r.fixed_by) or "-"
        lines.append(f"{f.id:4} {f.kind:30} {f.task:22} {found[:34]:34} {'yes' if r.fixed else 'no':5} "
                     f"{harm.get(f.task, 0):>4}  {by}")
    return lines


def run_bench(dest: Path, *, vault: BenchVault = SEED, target: float = 4.5, patience: int = 3, max_cycles: int = 60,
              verbose: bool = False, only: Collection[str] | None = None,
              out: Callable[[str], None] = print) -> dict[str, Any]:
    """The benchmark of one vault in `dest`; `only` restricts it to the faults of these tasks (others disabled)."""
    faults = [f for f in vault.faults if only is None or f.task in only]
    say = (lambda m: print(f"  · [{vault.name}] {m}", file=sys.stderr, flush=True)) if verbose else (lambda _m: None)
    t0 = time.perf_counter()
    with FaultServer(FlawedModels(seed=0)) as server:
        cfg_path, svc = setup(dest, server.host, only, vault)
        with svc:
            fault_tasks = sorted({f.task for f in faults})
            shown = signatures(svc, fault_tasks)
            enabled = [t for t, tc in svc.config.tasks.items() if tc.enabled]
            before = {t: probe(svc, t, vault.run_date) for t in enabled}
            data_before = {f.task: data_texts(svc.config, svc.config.task(f.task)) for f in faults if f.data}
            bench = Bench(cfg_path, svc, cycle_deps(svc, lambda _m: None), say=say)
            with svc.engine_connect() as conn:
                quality = {q.task: q.rolling_mean for q in quality_table(conn)}
            quality = {t: quality.get(t) for t in svc.config.tasks}
            report = run_loop(bench.deps, quality, target=target, patience=patience, max_cycles=max_cycles,
                              on_result=bench.on_result, approve=bench.approve, reload=bench.reload,
                              catch_up=svc.projections.catch_up)
            bench.reload(bench.deps)
            cfg = svc.config
            after = {t: rerun(svc, t, vault.run_date) for t in producers_first(cfg, [t for t in enabled
                                                                                  if cfg.tasks[t].enabled])}
            still = signatures(svc, fault_tasks)
            rows = [FaultRow(f, found_as=[s for s in f.shows if s in shown[f.task]]) for f in faults]
            for r in rows:
                f, tc = r.fault, cfg.task(r.fault.task)
                r.open_after = [s for s in f.shows if s in still[f.task]]
                r.rerun_status = after[f.task].run.status if f.task in after else "not run"
                r.failing_after = after[f.task].failing(f.checks) if f.task in after else list(f.checks)
                r.present_after = [m for m in f.absent if m in (tc.model, *tc.candidates)]
                r.data_problems = data_problems(cfg, f.task, data_before[f.task]) if f.data else []
                r.fixed_by = [s for s in bench.steps if s.kept and f.task in s.tasks]
            harmful = harmful_keeps(bench.steps, cfg, before, after)
        seconds = time.perf_counter() - t0
    harm_by_task: dict[str, int] = {}
    for line in harmful:
        task = line.split()[1].rstrip(":")
        harm_by_task[task] = harm_by_task.get(task, 0) + 1
    out(f"== vault={vault.name} ({vault.source}: {len(enabled)} tasks, {len(faults)} faults of "
        f"{len({f.kind for f in faults})} kinds) ==")
    for line in table(rows, harm_by_task):
        out(line)
    for r in rows:
        if not r.fixed:
            out(f"  {r.fault.id} not fixed: {why_not(r, bench.steps, report, shown)}")
    for line in harmful:
        out(f"  harmful keep: {line}")
    kinds = sorted({f.kind for f in faults})
    found_k = [k for k in kinds if all(r.found for r in rows if r.fault.kind == k)]
    fixed_k = [k for k in kinds if all(r.fixed for r in rows if r.fault.kind == k)]
    cycles, calls = len(bench.steps), sum(s.calls for s in bench.steps)
    fixed_n, found_n = sum(r.fixed for r in rows), sum(r.found for r in rows)
    approved = sum(1 for s in bench.steps if s.approved is not None)
    per_fix = cycles / fixed_n if fixed_n else float("inf")
    out(f"loop: {cycles} cycles, {sum(1 for s in bench.steps if s.kept)} kept ({approved} approved by the bench); "
        f"stopped: {report.stopped[:300]}")
    out(f"{SUMMARY_PREFIX}{vault.name} kinds={len(kinds)} found={len(found_k)} fixed={len(fixed_k)} "
        f"harmful={len(harmful)} cycles={cycles} per_fix={per_fix:.2f} faults_found={found_n}/{len(rows)} "
        f"faults_fixed={fixed_n}/{len(rows)} calls={calls} time={seconds:.0f}s")
    return {"vault": vault.name, "kinds": len(kinds), "found": len(found_k), "fixed": len(fixed_k),
            "harmful": len(harmful), "cycles": cycles, "calls": calls, "rows": rows, "steps": bench.steps,
            "seconds": seconds, "report": report, "per_fix": per_fix}


def in_memory_tmp() -> None:
    """Shadows, the vault copy and the event store in RAM when the machine has a tmpfs: the benchmark measures the
    product's decisions, not the disk, and a private temp folder keeps other processes' cleanups out of it."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        tmp = tempfile.mkdtemp(prefix="autovault-bench-", dir=shm)
        os.environ["TMPDIR"] = tempfile.tempdir = tmp
        atexit.register(shutil.rmtree, tmp, True)


def _one(args: argparse.Namespace, name: str) -> None:
    in_memory_tmp()
    only = args.tasks.split(",") if args.tasks else None
    kwargs = {"vault": VAULTS[name], "target": args.target, "patience": args.patience,
              "max_cycles": args.max_cycles, "verbose": args.verbose, "only": only}
    if args.keep is not None:
        dest = args.keep / name
        dest.mkdir(parents=True, exist_ok=True)
        run_bench(dest, **kwargs)
        return
    with tempfile.TemporaryDirectory(prefix=f"autovault-faults-{name}-") as tmp:
        run_bench(Path(tmp), **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-faults", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--vault", choices=sorted(VAULTS), default=None, help="one vault (default: both, in parallel)")
    ap.add_argument("--target", type=float, default=4.5)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--max-cycles", type=int, default=60)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp one)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per cycle on stderr")
    ap.add_argument("--tasks", default=None, help="comma-separated: only these tasks' faults (others disabled)")
    args = ap.parse_args(argv)
    if args.vault is not None:
        _one(args, args.vault)
        return 0
    print(f"bench-faults {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {len(VAULTS)} vaults on the flawed-model "
          f"double, loop target {args.target:g}, patience {args.patience}, max {args.max_cycles} cycles", flush=True)
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    procs = {name: subprocess.Popen([sys.executable, "-m", "benchmarks.bench_faults", "--vault", name, *forwarded],
                                    cwd=REPO, stdout=subprocess.PIPE, text=True) for name in VAULTS}
    summaries = []
    failed = 0
    for proc in procs.values():
        text, _ = proc.communicate()
        print(text, end="", flush=True)
        summaries += [ln for ln in text.splitlines() if ln.startswith(SUMMARY_PREFIX)]
        failed += proc.returncode != 0
    print("\n" + "\n".join(summaries))
    return 1 if failed else 0


def summary(line: str) -> dict[str, str]:
    """The fields of a `faults: vault=…` line (for tests and scripts)."""
    return dict(part.split("=", 1) for part in line.removeprefix("faults: ").split() if "=" in part)


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["Bench", "FaultRow", "Probe", "Step", "data_problems", "main", "probe", "producers_first",
           "rerun", "run_bench", "setup", "signatures", "summary"]
