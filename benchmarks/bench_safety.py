"""`make bench-safety`: issue 14 in one line.

    safety: proposals=N refused=N ran_unapproved=0 wrote_outside=0; kills=N lost=0 half_applied=0 orphans=0;
    bad_logs=N store_broken=0; bad_configs=N unclear=0

* proposals — `benchmarks.bench_safety_proposals.measure()` (crafted hostile deltas through loopback model
  servers and straight to the cycle): how many were refused, whether any code ran unapproved or wrote outside.
* kills — `benchmarks.safety_kills`: kill -9 at every step of five delta shapes, with and without git, and
  inside the recoveries; then what every command runs on start. lost / half_applied / orphans as defined there.
* bad_logs — every bad heartbeat line of `testbed.bad_logs` between two good ones, each ingested into
  its own store, plus the events an older version let in written straight into a store; store_broken counts
  cases where a good line was lost, the refusal was not one line naming file:line, or folding / rebuilding the
  read models, or reading status, ledger or history, raised.
* bad_configs — every malformed vault.yml of `testbed.bad_configs` (`CASES` and `SAFETY_CASES`);
  unclear counts a file whose `check` raised, passed, took over 10 s, or said something that is not one line
  naming the file and (a line or a field) with a fix, under 600 characters.

Figures only, no assertions; `python -m benchmarks.bench_safety [--quick]` (--quick: two delta shapes, no
proposals) for a short run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from adapters.config_loader import ConfigProblem, check_config
from adapters.eventstore import VaultStore
from benchmarks.safety_kills import SHAPES, KillTally, kill_every_step
from daemon.logging import configure_logging
from handlers.ingest import ingest_path
from projections.defaults import default_projections
from projections.ledger import ledger_rows
from projections.quality import quality_table
from projections.runner import ProjectionRunner
from projections.runs import task_history

CONFIG_SECONDS = 10
WHOLE_FILE = ("file not found", "is a folder", "cannot be read", "not UTF-8", "the top level", "MB, more than")
ONE_LINE = re.compile(r"^(vault\.yml|\$[A-Z_]+)(:\d+)?: .+ — fix: .+$")


@dataclass
class Tally:
    cases: int = 0
    bad: list[str] = field(default_factory=list)


# ---- bad logs -----------------------------------------------------------------------------------------------


def _reads(store: VaultStore) -> None:
    """What status, ledger and history read, after a rebuild too."""
    runner = ProjectionRunner(store, default_projections())
    runner.catch_up()
    runner.rebuild()
    with store.engine.connect() as conn:
        quality_table(conn)
        ledger_rows(conn)
        task_history(conn, "brief", 20)


def bad_logs(work: Path) -> Tally:
    from testbed.bad_logs import BAD_LINES, older_events, write_log

    out = Tally()
    for name, line, _ in BAD_LINES:
        out.cases += 1
        folder = work / f"log-{name}"
        folder.mkdir()
        log = write_log(folder / "h.jsonl", line)
        try:
            with VaultStore(f"sqlite:///{folder / 'events.db'}") as store:
                report = ingest_path(log, store)
                _reads(store)
            errors = report.errors
            if report.runs != 2 or len(errors) != 1 or not errors[0].startswith(f"{log}:2: ") or "\n" in errors[0] \
                    or " — fix: " not in errors[0]:
                out.bad.append(f"{name}: runs={report.runs} errors={[e[:120] for e in errors]}")
        except Exception as e:
            out.bad.append(f"{name}: {type(e).__name__}: {str(e)[:200]}")
    for url in _store_urls(work):
        try:
            with VaultStore(url) as store:
                out.cases += len(older_events(store))
                _reads(store)
        except Exception as e:
            out.bad.append(f"older events on {url.split(':')[0]}: {type(e).__name__}: {str(e)[:200]}")
    return out


def _store_urls(work: Path) -> list[str]:
    urls = [f"sqlite:///{work / 'older' / 'events.db'}"]
    pg = os.environ.get("AUTOVAULT_BENCH_PG_URL")  # e.g. a scratch database; the events stay there
    return [*urls, pg] if pg else urls


# ---- bad configs --------------------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def fire(_sig: int, _frame: FrameType | None) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def clear(problem: ConfigProblem) -> bool:
    line = str(problem)
    return bool(ONE_LINE.match(line)) and len(line) < 600 and "Traceback" not in line and \
        "internal error" not in line and (problem.line is not None or bool(problem.key)
                                          or problem.message.startswith(WHOLE_FILE) or " MB, " in problem.message)


def bad_configs(work: Path) -> Tally:
    from testbed.bad_configs import CASES, SAFETY_CASES, write_case

    cases: list[tuple[str, Any, Callable[[Path], None] | None]] = [(c[0], c[1], None) for c in CASES]
    for name, text, setup, _ in SAFETY_CASES:
        cases.append((name, text, setup))
    out = Tally()
    here = Path.cwd()
    for name, text, setup in cases:
        out.cases += 1
        folder = work / f"cfg-{name}"
        folder.mkdir()
        try:
            write_case(folder, text, {})
            if setup is not None:
                setup(folder)
            os.chdir(folder)
            with _deadline(CONFIG_SECONDS):
                problems = check_config(Path("vault.yml"), env={})
            if not problems:
                out.bad.append(f"{name}: passed check")
            elif not all(clear(p) for p in problems):
                out.bad.append(f"{name}: {[str(p)[:160] for p in problems if not clear(p)]}")
        except _Timeout:
            out.bad.append(f"{name}: over {CONFIG_SECONDS} s")
        except Exception as e:
            out.bad.append(f"{name}: {type(e).__name__}: {str(e)[:200]}")
        finally:
            os.chdir(here)
    return out


# ---- proposals (issue 14's first part, E14a's benchmark) ----------------------------------------------------


def proposals() -> Any | None:
    try:
        module = importlib.import_module("benchmarks.bench_safety_proposals")
    except ImportError:
        return None
    return module.measure()


# ---- the line -----------------------------------------------------------------------------------------------


def line(found: Any | None, kills: KillTally, logs: Tally, configs: Tally) -> str:
    part = (f"proposals={found.proposals} refused={found.refused} ran_unapproved={found.ran_unapproved} "
            f"wrote_outside={found.wrote_outside}") if found is not None else "proposals=0 (not measured)"
    return (f"safety: {part}; kills={kills.kills} lost={kills.lost} half_applied={kills.half_applied} "
            f"orphans={kills.orphans}; bad_logs={logs.cases} store_broken={len(logs.bad)}; "
            f"bad_configs={configs.cases} unclear={len(configs.bad)}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    configure_logging("error")  # recoveries log a warning each; the figures say what happened
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autovault-bench-safety-") as tmp:
        work = Path(tmp)
        found = None if quick else proposals()
        t1 = time.perf_counter()
        shapes = SHAPES[1::5] if quick else SHAPES
        kills = kill_every_step(work / "kills", shapes)
        t2 = time.perf_counter()
        (work / "logs").mkdir()
        (work / "configs").mkdir()
        logs = bad_logs(work / "logs")
        configs = bad_configs(work / "configs")
    t3 = time.perf_counter()
    print(line(found, kills, logs, configs))
    print(f"  kills: {len(shapes)} delta shapes ({', '.join(s.label for s in shapes)}), every apply step and the "
          f"recoveries; {kills.kills} processes killed in {t2 - t1:.0f} s")
    print(f"  logs and configs checked in {t3 - t2:.0f} s; proposals in {t1 - t0:.0f} s; total {t3 - t0:.0f} s")
    for o in kills.failures():
        print(f"  ! kill {o.shape} at {o.step}: {o.state} {'; '.join(o.lost + o.orphans)}")
    for bad in logs.bad:
        print(f"  ! log {bad}")
    for bad in configs.bad:
        print(f"  ! config {bad}")
    for incident in getattr(found, "incidents", []):
        print(f"  ! proposal {incident}")


if __name__ == "__main__":
    main()
