"""Data-flow projection cost on a 200-task synthetic vault: per run event (target < 5 ms), build, rewire, check.

The vault has 10 stages of 20 tasks. Each task writes a dated file of its own and a shared heartbeat log,
reads one named producer of the previous stage and (every third task) the whole previous stage, and needs
at least 300 words — so artifacts have fan-in and fan-out of ~20 and `check` has real mismatches to find.
"""

from __future__ import annotations

import random
import statistics
import time

from domain.config import TaskConfig, VaultConfig
from projections.dataflow import DataflowGraph, check

STAGES, WIDTH, EVENTS = 10, 20, 20_000


def synthetic_vault(stages: int = STAGES, width: int = WIDTH) -> VaultConfig:
    tasks: dict[str, TaskConfig] = {}
    for s in range(stages):
        for w in range(width):
            inputs = []
            if s:
                inputs.append(f"Stage{s - 1}/t{s - 1}-{(w + 1) % width}-*.md")
                if w % 3 == 0:
                    inputs.append(f"Stage{s - 1}/*.md")
            tasks[f"t{s}-{w}"] = TaskConfig(
                prompt=f"prompts/t{s}-{w}.md", model="ollama:qwen3:8b", inputs=inputs,
                outputs=[f"Stage{s}/t{s}-{w}-{{date}}.md", "heartbeat/logs/{date}.md"],
                requires={"min_words": 300} if s else {},
            )
    return VaultConfig(vault=".", tasks=tasks)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def main() -> None:
    rng = random.Random(7)
    cfg = synthetic_vault()
    t0 = time.perf_counter()
    graph = DataflowGraph.from_config(cfg)
    build = time.perf_counter() - t0
    edges = len(graph.task_edges())
    names = sorted(cfg.tasks)
    times: list[float] = []
    for i in range(EVENTS):
        name = names[i % len(names)]
        s, w = name[1:].split("-")
        date = f"2026-{1 + (i // 6000) % 12:02d}-{1 + (i // 200) % 28:02d}"
        path = f"Stage{s}/t{s}-{w}-{date}.md"
        words = rng.randint(150, 900)
        artifacts = {path: f"h{i}", f"heartbeat/logs/{date}.md": f"l{i}"} if rng.random() > 0.05 else {}
        t = time.perf_counter()
        graph.observe_run(name, f"r{i}", f"{date}T06:00:00Z", artifacts, words, int(words * 1.4),
                          blocks=0, status="ok", score=rng.uniform(2, 5), words_by_artifact={path: words})
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(1000):
        graph.observe_change(names[i % len(names)], "prompts/x.md", f"2026-12-01T00:00:{i % 60:02d}Z")
    change = (time.perf_counter() - t) / 1000
    t = time.perf_counter()
    findings = check(graph, exists=lambda glob: True)
    checking = time.perf_counter() - t
    tasks = dict(cfg.tasks)
    tasks["t5-5"] = tasks["t5-5"].model_copy(update={"inputs": ["Stage4/*.md", "Stage3/*.md"]})
    t = time.perf_counter()
    diff = graph.update_config(VaultConfig(vault=".", tasks=tasks))
    rewire = time.perf_counter() - t

    times.sort()
    print(f"vault: {len(names)} tasks, {graph.g.number_of_nodes()} nodes, {graph.g.number_of_edges()} edges, "
          f"{edges} task->task edges")
    print(f"build from config:        {_ms(build)}")
    print(f"observe_run per event:    mean {_ms(statistics.fmean(times))}  p50 {_ms(times[len(times) // 2])}  "
          f"p99 {_ms(times[int(len(times) * 0.99)])}  max {_ms(times[-1])}  ({EVENTS} events; target < 5 ms)")
    print(f"observe_change per event: {_ms(change)}")
    print(f"check (all kinds):        {_ms(checking)}  -> {len(findings)} findings")
    print(f"update_config (1 task):   {_ms(rewire)}  -> +{len(diff.edges_added)} / -{len(diff.edges_removed)} edges")


if __name__ == "__main__":
    main()
