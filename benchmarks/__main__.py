"""`make bench`: run every benchmark module in turn, each in a process of its own (one that loaded torch would
otherwise make the next one's forks slower), each printing its own figures."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    # End-to-end evaluations with their own targets: `make bench-faults`, `make bench-safety` (which includes
    # bench_safety_proposals).
    skip = {"bench_faults", "bench_safety", "bench_safety_proposals"}
    for name in names:
        if (wanted and name not in wanted) or (not wanted and name in skip):
            continue
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"from benchmarks.{name} import main; main()"], check=False)
        print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
