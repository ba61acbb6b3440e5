"""`make bench-faults`: every fault planted in the example vault, found and fixed by the improvement loop.

The example vault is copied into a temp folder, its vault.yml rewritten so each task runs on the flawed model
FAULTS.md names (see `benchmarks.fault_vault` for every choice made in the copy), and `backends.ollama.host`
pointed at a loopback Ollama-protocol server answering like the seed's flawed models
(`tests.servers.FlawedModels`, with the data-reading behaviours of `benchmarks.fault_models`), reached
through the real ollama client. The heartbeat logs are ingested, so
history exists. Then, through the same code the CLI uses (`daemon.bootstrap.cycle_deps`):

- found: the fault's signature appears in the diagnosis of its task (`handlers.diagnose.diagnose`);
- the loop runs in process (`handlers.loop.run_loop`); a delta that waits for approval (scripts/**) is approved
  by the benchmark at once through the loop's `approve` hook (`approve_cycle`) and reported as approved; the
  loop's `reload` hook re-reads vault.yml after each kept edit of it;
- fixed: a kept delta made by the fault's rule; afterwards the task is run again (shadow, same date and seed
  as a run made before the loop) and the signature must be gone and its hard contract checks pass (for a
  training-data fault: the data audit must pass — nothing is retrained, so the runs cannot show a data fix);
- cycles and model calls per fix: the cycles on that task up to the keep, and the calls their events recorded;
- harmful keeps: a kept delta with a negative verified effect, or after which its task (or a task reading its
  outputs) scores lower in the after-loop run than in the before-loop run.

Prints a table, per-fault counts, and one line `faults: kinds=K found=F fixed=X harmful=H cycles=C calls=M`
(F and X count kinds whose every planted fault was found / fixed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.config_loader import load_config
from adapters.yaml_edit import get_value
from benchmarks.fault_models import FaultModels
from benchmarks.fault_vault import FAULTS, Fault, make_fault_vault
from daemon.bootstrap import Services, bootstrap, cycle_deps, register_tasks
from daemon.dataflow import refresh_after_events
from domain.checks import contract_checks
from domain.config import VaultConfig
from domain.runs import Check, RunResult
from domain.scoring import FLOOR, penalty
from domain.signatures import RunView, TaskHistory, detect_signatures
from handlers.cycle import CycleDeps, CycleResult, approve_cycle
from handlers.diagnose import diagnose
from handlers.diagnose_static import audit_data, section_leaks, sed_loops
from handlers.ingest import ingest_path
from handlers.judge import judge_run
from handlers.loop import LoopReport, run_loop
from handlers.tasks import consumers_of
from handlers.verify import outputs_check
from projections import globs
from projections.quality import quality_table
from tests.servers import OllamaServer

RUN_SEED = 7  # the before/after runs: fixed seed and date, so a changed score is the change's doing
RUN_DATE = "2026-03-19"
STATIC = {"section_regex_leak", "subprocess_loop", "training_data_too_few", "training_data_imbalanced"}


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
    def rules(self) -> list[str]:
        d = self.result.delta
        return list(d.meta.get("rules") or []) if d is not None else []


@dataclass
class FaultRow:
    fault: Fault
    found: bool
    fix: Step | None = None
    gone: bool = False
    contract_ok: bool = False
    failing: list[str] = field(default_factory=list)
    cycles: int = 0
    calls: int = 0
    why: str = ""


@dataclass
class Bench:
    cfg_path: Path
    svc: Services
    deps: CycleDeps
    steps: list[Step] = field(default_factory=list)
    approved: dict[str, CycleResult] = field(default_factory=dict)  # cycle key -> what approving it did
    say: Callable[[str], None] = lambda _m: None

    def reload(self, deps: CycleDeps) -> CycleDeps:
        """The loop's reload hook: a kept delta changed vault.yml, so the next cycles (and approvals, and the
        after-loop runs) see the live config."""
        cfg = load_config(self.cfg_path, {})
        self.svc.config = cfg
        self.deps = dataclasses.replace(deps, verify=dataclasses.replace(deps.verify, config=cfg))
        return self.deps

    def approve(self, r: CycleResult) -> CycleResult:
        """The loop's approve hook: the benchmark approves every delta that waits (scripts/**) at once."""
        a = approve_cycle(self.deps, r.key)
        self.approved[r.key] = a
        return a

    def on_result(self, r: CycleResult) -> None:
        step = Step(len(self.steps) + 1, r, approved=self.approved.get(r.key), calls=_calls(r))
        self.steps.append(step)
        what = r.delta.description if r.delta is not None else "-"
        extra = " (approved by the bench)" if step.approved is not None else ""
        self.say(f"c{step.n:02d} [{r.task}] {r.outcome}{extra}: {what} — {r.reason}")


def _calls(r: CycleResult) -> int:
    return r.verification.cost.model_calls if r.verification is not None else 0


# ---- the runs before and after the loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One run and its judgement. `contract`: the checks of the task's declared `expect` plus outputs_written;
    `checks`: everything the judge checked (the universal checks too)."""

    run: RunResult
    score: float
    checks: list[Check]
    contract: list[Check]

    @property
    def contract_ok(self) -> bool:
        return self.run.status == "ok" and all(c.passed for c in self.contract)

    @property
    def universal_failures(self) -> list[str]:
        declared = {c.name for c in self.contract}
        return [c.name for c in self.checks if c.hard and not c.passed and c.name not in declared]


def probe(svc: Services, task: str) -> Probe:
    """The task run once in a shadow at the fixed date and seed, judged like verification judges it."""
    cfg = svc.config
    tc = cfg.task(task)
    tc = tc.model_copy(update={"options": tc.options.model_copy(update={"seed": RUN_SEED})})
    run = svc.runner.run(task, tc, date=RUN_DATE, shadow=True, source="bench")
    previous = svc.history.previous_outputs(task, tc.expect.distinct_from_previous) if tc.expect.distinct_from_previous else []
    rubric = svc.read_vault_text(tc.rubric or cfg.judge.rubric) or None
    judged = judge_run(run, tc, cfg.judge, svc.models.complete, previous, rubric)
    checks, score = list(judged.score.checks), float(judged.score.score)
    contract = contract_checks(run.output, tc.expect, previous)
    written = outputs_check(run, tc)
    if written is not None:
        checks.append(written)
        contract.append(written)
        score = max(FLOOR, score - penalty(written))
    return Probe(run, score, checks, contract)


def still_shows(cfg: VaultConfig, svc: Services, fault: Fault, p: Probe) -> bool:
    """Does the fault's signature still show on the after-loop run (or in the files, for static ones)?"""
    tc = cfg.task(fault.task)
    name = fault.signature
    if name in ("section_regex_leak", "subprocess_loop"):
        script = svc.read_vault_text(tc.collect.split()[0] if tc.collect else None)
        return bool(section_leaks(script) if name == "section_regex_leak" else sed_loops(script))
    if name.startswith("training_data_") and tc.training is not None:
        texts = {p.relative_to(cfg.root).as_posix(): p.read_text(encoding="utf-8")
                 for g in globs.to_pathlib(tc.training.data) for p in sorted(cfg.root.glob(g)) if p.is_file()}
        audit = audit_data(texts, tc.training.min_examples, tc.training.max_class_share, tc.training.label_field)
        return audit.too_few if name == "training_data_too_few" else audit.imbalanced
    if name == "wrong_model":
        return any("qwen2.5-coder" in m for m in [tc.model, *tc.candidates])
    if name == "dead_task":
        return not p.run.artifacts
    view = RunView.from_run(p.run, [c.name for c in p.checks if not c.passed])
    history = TaskHistory(task=fault.task, config=tc, runs=[view], prompt_text=svc.read_vault_text(tc.prompt),
                          consumers=consumers_of(cfg, fault.task, globs.overlaps), dead_after=1)
    shown = {s.name for s in detect_signatures(history)}
    if fault.config_key:  # F17: the cap itself must have risen
        shown |= set() if _raised(cfg, fault) else {name}
    return name in shown


def _raised(cfg: VaultConfig, fault: Fault) -> bool:
    original = get_value((Path(__file__).resolve().parent.parent / "vault.yml").read_text(encoding="utf-8"),
                         ["tasks", fault.task, *fault.config_key])
    now = get_value(cfg.source.read_text(encoding="utf-8"), ["tasks", fault.task, *fault.config_key])
    return isinstance(now, int) and isinstance(original, int) and now > original


# ---- the benchmark --------------------------------------------------------------------------------------------


def setup(dest: Path, host: str, only: Collection[str] | None = None) -> tuple[Path, Services]:
    cfg_path = make_fault_vault(dest, host, only)
    svc = bootstrap(load_config(cfg_path, {}), env={}, store_url=f"sqlite:///{dest / 'events.db'}")
    register_tasks(svc.store, svc.config)
    ingest_path(svc.config.root / "heartbeat" / "logs", svc.store)
    svc.projections.catch_up()
    refresh_after_events(svc)
    return cfg_path, svc


def found_signatures(svc: Services, tasks: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> signature name -> its evidence, as diagnosis shows them before the loop."""
    return {t: {s.name: dict(s.evidence) for s in diagnose(t, svc).signatures} for t in tasks}


def attribute(rows: list[FaultRow], steps: list[Step], cfg: VaultConfig) -> None:
    """For each fault: the first kept step on its task whose rules include the fault's rule; the cycles on the
    task since its previous fixing keep (or the start), and their model calls."""
    for row in rows:
        f = row.fault
        on_task = [s for s in steps if s.result.task == f.task]
        fix = next((s for s in on_task if s.kept and set(s.rules) & set(f.rules) and _edits_key(s, f, cfg)), None)
        row.fix = fix
        if fix is None:
            continue
        prior = [s for s in on_task if s.kept and s.n < fix.n]
        since = prior[-1].n if prior else 0
        spent = [s for s in on_task if since < s.n <= fix.n]
        row.cycles, row.calls = len(spent), sum(s.calls for s in spent)


def _edits_key(step: Step, fault: Fault, cfg: VaultConfig) -> bool:
    if not fault.config_key or step.result.delta is None:
        return True
    return any(e.in_config for e in step.result.delta.edits) and "num_predict" in step.result.delta.description


def harmful_keeps(steps: list[Step], cfg: VaultConfig, before: dict[str, Probe], after: dict[str, Probe]) -> list[str]:
    out = []
    for s in steps:
        if not s.kept or s.result.delta is None:
            continue
        v = s.result.verification
        touched = set(s.result.delta.tasks or (s.result.task,))
        readers = {c for t in touched for c in consumers_of(cfg, t, globs.overlaps)}
        worse = sorted(t for t in touched | readers if t in before and after[t].score < before[t].score - 1e-9)
        if v is not None and v.decision.effect < 0:
            out.append(f"c{s.n:02d} {s.result.task}: verified effect {v.decision.effect:+.2f}")
        elif worse:
            out.append(f"c{s.n:02d} {s.result.task}: after it, " + ", ".join(
                f"{t} {before[t].score:.2f}→{after[t].score:.2f}" for t in worse))
    return out


def why_not(row: FaultRow, steps: list[Step], report: LoopReport) -> str:
    f = row.fault
    if not row.found:
        return f"diagnose({f.task}) shows no {f.signature}"
    on_task = [s for s in steps if s.result.task == f.task]
    if row.fix is not None:
        if not row.contract_ok:
            return f"kept, but the after-loop run still fails its contract: {', '.join(row.failing)}"
        return f"kept, but the after-loop run still shows {f.signature}"
    if not on_task:
        return f"the loop never picked {f.task} (stopped: {report.stopped})"
    tried = [s for s in on_task if set(s.rules) & set(f.rules)]
    if tried:
        s = tried[-1]
        return f"c{s.n:02d} {s.result.outcome}: {s.result.reason}"[:160]
    last = on_task[-1]
    return (f"no cycle proposed {'/'.join(f.rules)}; last c{last.n:02d} {last.result.outcome}: "
            f"{last.result.reason}")[:160]


def table(rows: list[FaultRow], harm: dict[str, int]) -> list[str]:
    head = f"{'id':4} {'kind':30} {'task':18} {'found (signature)':26} {'fixed (cycle / lever)':28} {'cycles':>6} " \
           f"{'calls':>6} {'harmful':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        f = r.fault
        found = f.signature if r.found else f"no ({f.signature})"
        if r.fix is not None and r.gone and r.contract_ok:
            d = r.fix.result.delta
            fixed = f"c{r.fix.n:02d} {d.lever if d else '?'}" + (" approved" if r.fix.approved is not None else "")
        else:
            fixed = "no"
        lines.append(f"{f.id:4} {f.kind:30} {f.task:18} {found:26} {fixed:28} {r.cycles:>6} {r.calls:>6} "
                     f"{harm.get(f.task, 0):>7}")
    return lines


def run_bench(dest: Path, *, target: float = 4.5, patience: int = 3, max_cycles: int = 40, verbose: bool = False,
              only: Collection[str] | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """The benchmark in `dest`; `only` restricts it to the faults of these tasks (the others are disabled)."""
    faults = [f for f in FAULTS if only is None or f.task in only]
    say = (lambda m: print(f"  · {m}", file=sys.stderr, flush=True)) if verbose else (lambda _m: None)
    t0 = time.perf_counter()
    with OllamaServer(FaultModels(seed=0)) as server:
        cfg_path, svc = setup(dest, server.host, only)
        with svc:
            tasks = sorted({f.task for f in faults})
            sigs = found_signatures(svc, tasks)
            enabled = [t for t, tc in svc.config.tasks.items() if tc.enabled]
            before = {t: probe(svc, t) for t in enabled}
            bench = Bench(cfg_path, svc, cycle_deps(svc, lambda _m: None), say=say)
            with svc.engine_connect() as conn:
                quality = {q.task: q.rolling_mean for q in quality_table(conn)}
            quality = {t: quality.get(t) for t in svc.config.tasks}
            report = run_loop(bench.deps, quality, target=target, patience=patience, max_cycles=max_cycles,
                              on_result=bench.on_result, approve=bench.approve, reload=bench.reload)
            bench.reload(bench.deps)
            cfg = svc.config
            after = {t: probe(svc, t) for t in enabled}
            rows = [FaultRow(f, f.signature in sigs[f.task]) for f in faults]
            attribute(rows, bench.steps, cfg)
            for r in rows:
                p = after[r.fault.task]
                # a training-data fault is a property of the data, fixed when its audit passes: nothing is
                # retrained here, so the task's runs (and their contract) cannot show it either way
                r.contract_ok = p.contract_ok or r.fault.signature.startswith("training_data_")
                r.failing = [c.name for c in p.contract if not c.passed] + ([] if p.run.status == "ok" else ["status"])
                r.gone = not still_shows(cfg, svc, r.fault, p)
            harmful = harmful_keeps(bench.steps, cfg, before, after)
        seconds = time.perf_counter() - t0
    harm_by_task: dict[str, int] = {}
    for line in harmful:
        task = line.split()[1].rstrip(":")
        harm_by_task[task] = harm_by_task.get(task, 0) + 1
    for line in table(rows, harm_by_task):
        out(line)
    fixed_rows = [r for r in rows if r.found and r.fix is not None and r.gone and r.contract_ok]
    for r in rows:
        if r not in fixed_rows:
            out(f"  {r.fault.id} not fixed: {why_not(r, bench.steps, report)}")
            not_mined = sigs[r.fault.task].get(r.fault.signature, {}).get("not_mined")
            if not_mined:
                out(f"      nothing to mine: {not_mined}")
    for t, p in sorted(after.items()):
        if p.universal_failures and any(r.fault.task == t for r in rows):
            out(f"  note: {t}'s after-loop run fails universal checks {', '.join(p.universal_failures)} "
                f"(outside its declared contract)")
    for line in harmful:
        out(f"  harmful keep: {line}")
    kinds = sorted({f.kind for f in faults})
    found_k = [k for k in kinds if all(r.found for r in rows if r.fault.kind == k)]
    fixed_k = [k for k in kinds if all(r in fixed_rows for r in rows if r.fault.kind == k)]
    cycles, calls = len(bench.steps), sum(s.calls for s in bench.steps)
    approved = sum(1 for s in bench.steps if s.approved is not None)
    out(f"loop: {cycles} cycles, {sum(1 for s in bench.steps if s.kept)} kept ({approved} approved by the bench); "
        f"stopped: {report.stopped}")
    fix_cycles = sorted({r.fix.n for r in fixed_rows if r.fix is not None})
    per_fix = sum(r.cycles for r in fixed_rows) / max(1, len(fixed_rows))
    out(f"per fault: found={sum(r.found for r in rows)}/{len(rows)} fixed={len(fixed_rows)}/{len(rows)} "
        f"(in {len(fix_cycles)} kept cycles); cycles per fix {per_fix:.2f} (cycles on its task up to the keep), "
        f"{cycles / max(1, len(fixed_rows)):.2f} counting every loop cycle; time {seconds:.0f} s")
    out(f"faults: kinds={len(kinds)} found={len(found_k)} fixed={len(fixed_k)} harmful={len(harmful)} "
        f"cycles={cycles} calls={calls}")
    return {"kinds": len(kinds), "found": len(found_k), "fixed": len(fixed_k), "harmful": len(harmful),
            "cycles": cycles, "calls": calls, "rows": rows, "steps": bench.steps, "seconds": seconds,
            "report": report}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=float, default=4.5)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--max-cycles", type=int, default=40)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp one)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per cycle on stderr")
    ap.add_argument("--tasks", default=None, help="comma-separated: only these tasks' faults (others disabled)")
    args = ap.parse_args(argv)
    only = args.tasks.split(",") if args.tasks else None
    print(f"bench-faults {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: example vault on the flawed-model double, "
          f"loop target {args.target:g}, patience {args.patience}, max {args.max_cycles} cycles", flush=True)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run_bench(args.keep, target=args.target, patience=args.patience, max_cycles=args.max_cycles,
                  verbose=args.verbose, only=only)
        return 0
    with tempfile.TemporaryDirectory(prefix="autovault-faults-") as tmp:
        run_bench(Path(tmp), target=args.target, patience=args.patience, max_cycles=args.max_cycles,
                  verbose=args.verbose, only=only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
