"""Event store figures: batched append rate vs raw sqlite3, projection rebuild of 100k events, query latency.

Run: `python -m benchmarks.bench_store [N_EVENTS]` (default 100,000, or AUTOVAULT_BENCH_EVENTS). Prints figures; asserts nothing about
time. Works in a temporary folder that is removed afterwards unless AUTOVAULT_BENCH_KEEP is set, in
which case the store stays there (for timing `autovault status --json` on it) and its URL is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.eventstore import VaultStore
from benchmarks.cli_timing import ROOT, cli, median_wall
from daemon import read_stamp
from domain import ids
from domain.runs import Check, RunResult, Score
from projections.defaults import default_projections
from projections.quality import quality_table
from projections.runner import ProjectionRunner

TASKS = [f"task-{i:02d}" for i in range(24)]
BATCH = 5000
RATE_EVENTS = 20_000


def _result(i: int) -> RunResult:
    task = TASKS[i % len(TASKS)]
    return RunResult(
        run_id=f"run-{i}", task=task, started=f"2026-03-{i % 28 + 1:02d}T06:{i % 60:02d}:00Z", status="ok",
        model="ollama:qwen3:8b", options={"num_predict": 300, "temperature": 0.7},
        output=f"## Output {i}\n" + "word " * (50 + i % 200), done_reason="length" if i % 7 == 0 else "stop",
        prompt_tokens=800 + i % 300, output_tokens=300, durations={"collect": 0.4, "model": 11.5},
        read_hashes={f"notes/{i % 40}.md": "a" * 64})


def _score(i: int) -> tuple[str, Score]:
    return TASKS[i % len(TASKS)], Score(run_id=f"run-{i}", score=float(1 + (i * 7919) % 5), judge="output-judge",
                                        reasons=["ok"], checks=[Check("truncated", i % 7 != 0)])


def append(store: VaultStore, start: int, runs: int, with_scores: bool) -> int:
    """Record `runs` runs (and a score for each) in batches of BATCH events; returns events written."""
    written = 0
    i = start
    while i < start + runs:
        b = store.batch()
        while len(b) < BATCH and i < start + runs:
            b.run(_result(i))
            if with_scores:
                b.score(*_score(i))
            i += 1
        written += len(b)
        b.commit()
    return written


def raw_sqlite_rate(path: Path, sample_state: bytes, n: int) -> float:
    """Rows like the event table's, inserted with sqlite3 executemany in the same batch size."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, originator_id BLOB NOT NULL, "
                "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, state BLOB NOT NULL)")
    con.execute("CREATE UNIQUE INDEX events_aggregate_idx ON events (originator_id, originator_version)")
    topic = "domain.aggregates:Task.Ran"
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        rows = [(ids.task_id(TASKS[i % len(TASKS)]).bytes, i // len(TASKS) + 1, topic, sample_state)
                for i in range(start, min(n, start + BATCH))]
        with con:
            con.executemany("INSERT INTO events (originator_id, originator_version, topic, state) VALUES (?,?,?,?)",
                            rows)
    elapsed = time.perf_counter() - t0
    con.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> None:
    """`argv` is only read when run as a script; `python -m benchmarks` calls main() with none."""
    args = argv or []
    total = int(args[0]) if args else int(os.environ.get("AUTOVAULT_BENCH_EVENTS", "100000"))
    keep = os.environ.get("AUTOVAULT_BENCH_KEEP")
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="autovault-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _run(folder, total)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, total: int) -> None:
    url = f"sqlite:///{folder / 'events.db'}"
    if Path(folder / "events.db").exists():
        raise SystemExit(f"bench: {folder / 'events.db'} exists — fix: point AUTOVAULT_BENCH_KEEP at an empty folder")
    with VaultStore(url) as store:
        for t in TASKS:
            store.register_task(t, "h")
        # 1. batched append rate, runs only, vs raw sqlite3 executemany of comparable rows
        t0, c0 = time.perf_counter(), time.process_time()
        n = append(store, 0, RATE_EVENTS, with_scores=False)
        ours = n / (time.perf_counter() - t0)
        ours_cpu = n / (time.process_time() - c0)
        with store.engine.connect() as conn:
            sample = conn.exec_driver_sql("SELECT state FROM autovault_events ORDER BY id DESC LIMIT 1").scalar_one()
        c0 = time.process_time()
        raw = raw_sqlite_rate(folder / "raw.db", bytes(sample), RATE_EVENTS)
        raw_cpu = RATE_EVENTS / (time.process_time() - c0)
        print(f"batched append (eventsourcing+SQLAlchemy, {BATCH}/save, SQLite WAL): {ours:,.0f} events/s "
              f"(event state {len(sample)} B, blobs included)")
        print(f"raw sqlite3 executemany, same rows and batch size:           {raw:,.0f} rows/s")
        print(f"ratio raw/ours: {raw / ours:.1f}x wall clock, {raw_cpu / ours_cpu:.1f}x per CPU second "
              "(the second is steadier on a shared machine)")

        # 2. fill to `total` events (runs + scores), then rebuild every projection
        t0 = time.perf_counter()
        have = store.max_notification_id()
        runs_needed = max(0, (total - have) // 2)
        append(store, RATE_EVENTS, runs_needed, with_scores=True)
        filled = store.max_notification_id()
        print(f"generated {filled:,} events in the store ({time.perf_counter() - t0:.1f} s for the last "
              f"{filled - have:,}, runs+scores in batches of {BATCH})")

        runner = ProjectionRunner(store, default_projections())
        t0, c0 = time.perf_counter(), time.process_time()
        folded = runner.catch_up()
        first, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"projection catch-up from empty (runs, quality, ledger): {folded:,} events in {first:.1f} s "
              f"({folded / first:,.0f} events/s; {cpu:.1f} s CPU in this process)")
        t0, c0 = time.perf_counter(), time.process_time()
        runner.rebuild()
        rebuild, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"projection rebuild (drop + refold runs, quality and ledger in one pass, {filled:,} events): "
              f"{rebuild:.1f} s ({cpu:.1f} s CPU)")

        # 3. the status query
        lat = []
        for _ in range(50):
            t0 = time.perf_counter()
            with store.engine.connect() as conn:
                rows = quality_table(conn)
            lat.append(time.perf_counter() - t0)
        print(f"quality_table() on {len(rows)} tasks: median {statistics.median(lat) * 1000:.2f} ms")
    t0 = time.perf_counter()
    with VaultStore(url) as store:
        ProjectionRunner(store, default_projections()).catch_up()
        with store.engine.connect() as conn:
            json.dumps([q.__dict__ for q in quality_table(conn)])
    print(f"open store + catch-up (nothing new) + quality_table + JSON, in-process: "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    status_latency(folder, url)
    size = sum(p.stat().st_size for p in folder.glob("events.db*"))
    print(f"store size: {size / 1e6:.0f} MB at {url}")


def status_latency(folder: Path, url: str, repeats: int = 5) -> None:
    """`autovault --json status` as a user runs it (a new process each time) on the filled store: the full path
    (no stamp: pydantic, SQLAlchemy, the read-model checks) and the quick one (`daemon.quick_status`, from the stamp
    the full path leaves), against the interpreter's own start-up measured in the same run."""
    vault = folder / "vault"
    (vault / "prompts").mkdir(parents=True, exist_ok=True)
    (vault / "prompts" / "p.md").write_text("Summarise {context}\n")
    tasks = "".join(f"  {t}: {{prompt: prompts/p.md, model: 'ollama:qwen3:8b'}}\n" for t in TASKS)
    cfg = folder / "vault.yml"
    cfg.write_text(f"vault: vault\nstore: {url}\ntasks:\n{tasks}")
    then = time.time_ns() - 3600 * 10**9  # a vault last edited an hour ago, not in the last clock tick
    for path in [vault, *vault.rglob("*")]:
        os.utime(path, ns=(then, then))
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
    stamp = read_stamp.stamp_file(str(cfg.resolve()), env)
    subprocess.run(cli(cfg, ["status"]), cwd=ROOT, env=env, check=True, capture_output=True)  # records vault.yml
    bare = median_wall([sys.executable, "-c", "pass"], repeats)
    full = median_wall(cli(cfg, ["status"]), repeats, env=env, before=lambda: stamp.unlink(missing_ok=True))
    if not stamp.exists():
        raise SystemExit(f"bench: the full path left no stamp at {stamp}")
    quick = median_wall(cli(cfg, ["status"]), repeats, env=env)
    print(f"`autovault --json status` on that store, median of {repeats} new processes (python itself: "
          f"{bare * 1000:.0f} ms):")
    print(f"  full path (no stamp: loads vault.yml, checks the read models with SQLAlchemy): {full * 1000:.0f} ms")
    print(f"  quick path (from the stamp the full path left):                               {quick * 1000:.0f} ms "
          f"— target < 300 ms: {'met' if quick < 0.3 else 'MISSED'}; {full / quick:.1f}x faster than the full path")


if __name__ == "__main__":
    main(sys.argv[1:])
