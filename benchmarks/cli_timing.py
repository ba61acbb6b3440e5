"""A CLI command timed as a user runs it: a new process each time, median wall time, beside the bare import."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_wall(argv: list[str], repeats: int, *, env: Mapping[str, str] | None = None,
                before: Callable[[], object] | None = None) -> float:
    """Median seconds of `argv` run `repeats` times from the repository root (`before` runs untimed each time)."""
    samples = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, env=env)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def cli(cfg: Path, args: list[str]) -> list[str]:
    """`autovault --config cfg --json ARGS` as a command line."""
    return [sys.executable, "-m", "daemon.cli", "--config", str(cfg), "--json", *args]


def cli_and_import(cfg: Path, args: list[str], repeats: int) -> tuple[float, float]:
    """(`autovault --config cfg --json ARGS`, importing the CLI alone), both medians in seconds."""
    bare = median_wall([sys.executable, "-c", "import daemon.cli"], repeats)
    return median_wall(cli(cfg, args), repeats), bare
