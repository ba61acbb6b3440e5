"""The daemon: watch latency (file write → `Changed` event stored) over 200 edits, and idle CPU.

The real `autovault run` in a subprocess over a temp vault (the test harness's tiny vault, a loopback Ollama
for the verification runs each edit queues). Each edit is an editor-style save (temp file + rename) of a
prompt; the latency is the time until the store holds one more `Task.Changed`, polled every 2 ms. The
daemon runs with `--debounce 0.1`: the latency is that quiet period plus the daemon's own work, so the
overhead (latency − debounce) is printed too. Idle CPU: utime+stime of the daemon over 5 s with nothing
happening, from /proc.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from adapters.atomic import write_atomic
from domain.aggregates import Task
from testbed.daemon_harness import DaemonVault, wait_until
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply

EDITS = 200
DEBOUNCE = 0.1
IDLE_S = 10.0


def _changed(v: DaemonVault) -> int:
    return len(v.events(Task.Changed))  # type: ignore[attr-defined]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    server = OllamaServer(lambda _r: Reply(text="one two three four five six seven")).start()
    with tempfile.TemporaryDirectory() as tmp:
        v = DaemonVault.make(Path(tmp), server.host)
        try:
            proc = v.start()
            v.ready()
            prompt = v.root / "prompts" / "notes.md"
            latencies = []
            for i in range(EDITS):
                before = _changed(v)
                t0 = time.perf_counter()
                write_atomic(prompt, f"Write notes for {{date}}. Edit {i}.\n")
                deadline = t0 + 10
                while _changed(v) == before:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"edit {i} not recorded within 10 s; daemon log:\n{v.log_text()[-3000:]}")
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - t0)
            ms = [x * 1000 for x in latencies]
            print(f"watch latency, write → Changed stored, {EDITS} edits (debounce {DEBOUNCE * 1000:.0f} ms):")
            print(f"  p50 {statistics.median(ms):.0f} ms, p99 {_quantile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms; "
                  f"overhead beyond the debounce p50 {statistics.median(ms) - DEBOUNCE * 1000:.0f} ms")
            wait_until(lambda: [f for f in v.notify.fields() if f.startswith("STATUS=")][-1].startswith("STATUS=idle"),
                       60, "the queued verification runs to drain")
            c0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(IDLE_S)
            c1, t1 = _cpu_seconds(proc.pid), time.perf_counter()
            tick = 100 / os.sysconf("SC_CLK_TCK") / (t1 - t0)  # one clock tick, in % of the window
            share = 100 * (c1 - c0) / (t1 - t0)
            shown = f"{share:.2f} %" if c1 > c0 else f"< {tick:.2f} % (not one clock tick used)"
            print(f"idle CPU of the daemon over {IDLE_S:.0f} s: {shown} of one core")
            v.signal(signal.SIGTERM)
            v.wait(60)
        finally:
            v.close()
            server.stop()


if __name__ == "__main__":
    main()
