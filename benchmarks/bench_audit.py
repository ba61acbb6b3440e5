"""Audit figures: `audit TASK` on a 100k-event history (goal < 2 s), and the as-of fold.

The history: 10 tasks, each with daily runs and scores (a noisy 1–5 judge), ~100 human edits with their texts
and diffs, vault.yml versions, and one edit to `task-00`'s prompt after which its quality drops by 1.0. Printed:
the audit's time in process (the read models caught up, as the daemon keeps them), where it put the drop against
where it was made, the window it named, and `autovault audit` as a user runs it (a new process) against the
interpreter's own start-up; then `replay --until` half way (a private fold of half the history).

Run: `python -m benchmarks.bench_audit [N_EVENTS]` (default 100,000, or AUTOVAULT_BENCH_EVENTS).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from adapters.config_loader import load_config
from benchmarks.cli_timing import cli_and_import
from daemon.bootstrap import audit_deps, bootstrap, register_tasks
from domain.delta import unified_diff
from domain.ids import sha256_text
from domain.runs import RunResult, Score
from handlers.audit import audit
from projections.as_of import AsOf
from projections.defaults import default_projections

TASKS = [f"task-{i:02d}" for i in range(10)]
BATCH = 5000
GOAL_S = 2.0


def write_vault(folder: Path) -> Path:
    vault = folder / "vault"
    (vault / "prompts").mkdir(parents=True)
    for t in TASKS:
        (vault / "prompts" / f"{t}.md").write_text(f"Summarise for {t}:\n{{context}}\n")
    tasks = "".join(f"  {t}: {{prompt: prompts/{t}.md, model: 'ollama:qwen3:8b'}}\n" for t in TASKS)
    cfg = folder / "vault.yml"
    cfg.write_text(f"vault: vault\nstore: sqlite:///{folder / 'events.db'}\njudge: {{llm_weight: 0}}\n"
                   f"research: {{min_effect: 0.3}}\ntasks:\n{tasks}")
    return cfg


def fill(svc: object, total: int, rng: random.Random) -> tuple[int, int]:
    """Runs and scores to `total` events; returns (index of task-00's first score after the break, its position)."""
    from daemon.bootstrap import Services

    assert isinstance(svc, Services)
    store, root = svc.store, svc.config.root
    per_task = max(10, (total - store.max_notification_id()) // (2 * len(TASKS)))
    break_at = per_task * 2 // 3
    edits = {rng.randrange(per_task) for _ in range(100)} | {break_at}
    broke = (0, 0)
    batch = store.batch()
    for i in range(per_task):
        if i in edits:  # human edits, recorded as the daemon records them: texts in the blob store, a diff
            batch.commit()
            for t in TASKS[: 1 if i == break_at else 2]:
                path = root / "prompts" / f"{t}.md"
                before = path.read_text()
                after = before + ("Example:\n## Output\n- copied 1\n" if i == break_at else f"Note {i}.\n")
                path.write_text(after)
                store.blobs.put_many([before, after])
                store.record_change(t, f"prompts/{t}.md", sha256_text(before), sha256_text(after),
                                    unified_diff(f"prompts/{t}.md", before, after), "human")
            batch = store.batch()
        for t in TASKS:
            run_id = f"{t}-{i}"
            mean = 4.2 if not (t == TASKS[0] and i >= break_at) else 3.2
            batch.run(RunResult(run_id=run_id, task=t, started=f"2026-01-01T06:00:{i % 60:02d}Z", status="ok",
                                model="ollama:qwen3:8b", options={}, output=f"out {i}", done_reason="stop",
                                prompt_tokens=10, output_tokens=10, source="daemon"))
            batch.score(t, Score(run_id=run_id, score=min(5.0, max(1.0, round(rng.gauss(mean, 0.7) * 2) / 2)),
                                 judge="contract/1", reasons=[]))
            if len(batch) >= BATCH:
                positions = batch.commit()
                batch = store.batch()
                if t == TASKS[0] and i == break_at:
                    broke = (i, int(positions[-1] or 0))
        if i == break_at and t == TASKS[-1] and not broke[1]:
            broke = (i, store.max_notification_id())
    batch.commit()
    return broke


def main(argv: list[str] | None = None) -> None:
    args = argv or []
    total = int(args[0]) if args else int(os.environ.get("AUTOVAULT_BENCH_EVENTS", "100000"))
    folder = Path(tempfile.mkdtemp(prefix="autovault-bench-audit-"))
    try:
        _run(folder, total)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, total: int) -> None:
    cfg = write_vault(folder)
    rng = random.Random(12)
    with bootstrap(load_config(cfg), env={}) as svc:
        register_tasks(svc.store, svc.config)
        t0 = time.perf_counter()
        broke_index, _ = fill(svc, total, rng)
        events = svc.store.max_notification_id()
        print(f"history: {events:,} events ({len(TASKS)} tasks, runs + scores + ~100 human edits) built in "
              f"{time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        svc.projections.catch_up()
        print(f"read models caught up from empty in {time.perf_counter() - t0:.1f} s (the daemon does this as it goes)")
        deps = audit_deps(svc)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            report = audit(deps, TASKS[0], record=False)
            times.append(time.perf_counter() - t0)
        took = statistics.median(times)
        shift = report.shift
        found = report.score_index(shift.index) if shift else None
        print(f"audit {TASKS[0]} in process: median {took:.2f} s over 3 (goal < {GOAL_S:.0f} s: "
              f"{'met' if took < GOAL_S else 'MISSED'}, {took / GOAL_S:.2f}× the goal) — {len(report.series):,} scores "
              f"tested as {len(report.bins):,} points")
        print(f"  drop made before score {broke_index:,}, found at score {found:,} " if found is not None else
              "  no drop found ", end="")
        print(f"({shift.change:+.2f}, p={shift.p_value:.3f}); window holds {len(report.changes)} change(s); "
              f"verdict: {report.verdict[:120]}" if shift else "")
        cli_latency(cfg)
        half = events // 2
        t0 = time.perf_counter()
        with AsOf(svc.store, default_projections(svc.config.research.rolling), half) as past:
            folded = past.folded
        print(f"replay --until #{half:,}: {folded:,} events folded into a private read model in "
              f"{time.perf_counter() - t0:.1f} s (live read models untouched)")


def cli_latency(cfg: Path, repeats: int = 3) -> None:
    full, bare = cli_and_import(cfg, ["audit", TASKS[0]], repeats)
    print(f"`autovault --json audit {TASKS[0]}` as a new process: median {full:.2f} s over {repeats} (importing the "
          f"CLI alone: {bare:.2f} s; the audit's share: {full - bare:.2f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
