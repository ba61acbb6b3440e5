"""How much a collector costs, measured so that a loaded machine cannot decide it.

Wall time on a busy 2-core machine is mostly other processes' doing. CPU time of the collector's own process
tree is not: `os.wait4` returns the user + system seconds of the script and every child it waited for (each
`sed`, `date` and `basename` a fork-storm loop spawns). The two collectors run interleaved on the same paired
inputs (A B, B A, … so drift hits both alike), and a one-sided sign test asks whether the candidate takes at
most `RATIO` of the baseline's CPU on more pairs than chance explains (p < `ALPHA`). Only then is the
candidate "cheaper": the simplicity criterion's "simpler script" for a delta that keeps the score equal.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.sandbox import SandboxUnavailable
from adapters.subprocesses import script_argv, script_env
from domain.acceptance import sign_test
from handlers.ports import Confine, Confinement

RATIO = 0.75  # the candidate must take at most this share of the baseline's CPU on a pair to count for it
ALPHA = 0.05  # one-sided sign test
PAIRS = 8  # measured pairs: 7 of 8 for the candidate gives p = 0.035
POLL_S = 0.002


@dataclass(frozen=True)
class CollectorCost:
    base_cpu_s: tuple[float, ...]
    cand_cpu_s: tuple[float, ...]
    inputs: tuple[str, ...]
    wins: int  # pairs where the candidate took ≤ RATIO × the baseline's CPU
    p: float

    @property
    def cheaper(self) -> bool:
        return bool(self.base_cpu_s) and self.p < ALPHA

    @property
    def median_ratio(self) -> float:
        ratios = sorted(c / b for b, c in zip(self.base_cpu_s, self.cand_cpu_s, strict=True) if b > 0)
        return ratios[len(ratios) // 2] if ratios else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {"method": "CPU seconds (user+sys) of the collector and its children via wait4, pairs interleaved",
                "base_cpu_s": [round(x, 4) for x in self.base_cpu_s],
                "cand_cpu_s": [round(x, 4) for x in self.cand_cpu_s], "inputs": list(self.inputs),
                "ratio": RATIO, "wins": self.wins, "pairs": len(self.base_cpu_s), "p": round(self.p, 5),
                "median_ratio": round(self.median_ratio, 3), "cheaper": self.cheaper}

    def note(self) -> str:
        verdict = "cheaper" if self.cheaper else "not measurably cheaper"
        return (f"collector {verdict}: median CPU {self.median_ratio:.2f}× the baseline's, {self.wins} of "
                f"{len(self.base_cpu_s)} pairs ≤ {RATIO:g}×, sign test p={self.p:.3g}")


def collector_cpu(root: Path, command: str, *, day: str, task: str, timeout: float, confine: Confine,
                  base_env: Mapping[str, str], passthrough: tuple[str, ...] = ()) -> float | None:
    """CPU seconds of one collector run (its output discarded); None when it fails or times out. It runs in a
    shadow, so it is sandboxed (`confine`) like every shadow run: writes only there, no network."""
    argv, _, _ = script_argv(root, command)
    env = script_env(base_env, {"VAULT_ROOT": str(root), "AUTOVAULT_TASK": task, "AUTOVAULT_DATE": day,
                                "AUTOVAULT_RUN_ID": f"cost-{day}"}, passthrough)
    try:
        with confine(env, Confinement((root,))) as (run_env, preexec):
            return _cpu(argv, root, run_env, timeout, preexec)
    except (SandboxUnavailable, subprocess.SubprocessError):
        return None


def _cpu(argv: list[str], root: Path, env: dict[str, str], timeout: float,
         preexec: Callable[[], None] | None) -> float | None:
    proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, preexec_fn=preexec)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
        time.sleep(POLL_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # a forgotten background child dies with the group
    return usage.ru_utime + usage.ru_stime if proc.returncode == 0 else None


def compare_collectors(base: tuple[Path, str], cand: tuple[Path, str], days: Sequence[str], *, task: str,
                       timeout: float, confine: Confine, base_env: Mapping[str, str],
                       passthrough: tuple[str, ...] = (), pairs: int = PAIRS) -> CollectorCost:
    """`pairs` interleaved runs of both collectors (root, command) over `days` in turn; failed pairs are left out."""
    b_cpu: list[float] = []
    c_cpu: list[float] = []
    used: list[str] = []
    for i in range(pairs if days else 0):
        day = days[i % len(days)]
        order = (base, cand) if i % 2 == 0 else (cand, base)
        got = [collector_cpu(root, cmd, day=day, task=task, timeout=timeout, confine=confine, base_env=base_env,
                             passthrough=passthrough) for root, cmd in order]
        first, second = got
        b, c = (first, second) if i % 2 == 0 else (second, first)
        if b is None or c is None:
            continue
        b_cpu.append(b)
        c_cpu.append(c)
        used.append(day)
    wins = sum(1 for b, c in zip(b_cpu, c_cpu, strict=True) if b > 0 and c <= RATIO * b)
    return CollectorCost(tuple(b_cpu), tuple(c_cpu), tuple(used), wins, sign_test(wins, len(b_cpu)))


__all__ = ["ALPHA", "PAIRS", "RATIO", "CollectorCost", "collector_cpu", "compare_collectors"]
