"""The fault benchmark, small: three fault kinds end to end through the code `make bench-faults` runs (the seed
vault copy, the loopback Ollama double through the real ollama client, diagnose, the loop, approval, the
after-loop runs), plus the double's data-reading behaviours the bench relies on."""

from __future__ import annotations

import random
import re
from pathlib import Path

from adapters.config_loader import load_config
from benchmarks.bench_faults import run_bench
from benchmarks.fault_models import overflowed, templated
from benchmarks.fault_vault import FAULTS, FLAWED, GOOD_MODEL, make_fault_vault
from tests.servers import Request

SUMMARY = re.compile(r"^faults: kinds=(\d+) found=(\d+) fixed=(\d+) harmful=(\d+) cycles=(\d+) calls=(\d+)$")


def test_three_fault_kinds_are_found_fixed_and_summarised(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_bench(tmp_path, only=("research-radar", "blog-writer", "knowledge-quiz"), out=lines.append)
    m = SUMMARY.match(lines[-1])
    assert m is not None, lines[-1]
    kinds, found, fixed, harmful, cycles, calls = map(int, m.groups())
    assert (kinds, found, fixed, harmful) == (3, 3, 3, 0)
    assert cycles == len(result["steps"]) and calls > 0
    rows = {r.fault.id: r for r in result["rows"]}
    assert set(rows) == {"F06", "F07", "F09", "F13"}
    quiz = rows["F09"]
    assert quiz.fix is not None and quiz.fix.approved is not None and quiz.fix.approved.kept  # scripts/** approved
    assert rows["F13"].fix is not None and rows["F13"].fix.result.delta.lever == "candidates"
    table = "\n".join(lines)
    assert "F09" in table and "approved" in table
    live = (tmp_path / "vault" / "scripts" / "knowledge-quiz.sh").read_text()
    assert "[^K]" not in live.split("\n", 3)[-1]  # the leaking awk is gone from the live copy
    cfg = load_config(tmp_path / "vault.yml", {})
    assert "ollama:qwen2.5-coder:14b" not in cfg.tasks["blog-writer"].candidates


def test_the_copy_runs_each_task_on_its_faults_model_against_the_double(tmp_path: Path) -> None:
    cfg = load_config(make_fault_vault(tmp_path, "http://127.0.0.1:9"), {})
    assert cfg.backends.ollama is not None and cfg.backends.ollama.host == "http://127.0.0.1:9"
    assert cfg.judge.llm_weight == 0 and (cfg.research.samples, cfg.research.max_samples) == (3, 6)
    for name, task in cfg.tasks.items():
        assert task.model == FLAWED.get(name, GOOD_MODEL)
        assert not any(m.startswith("embedded:") for m in task.candidates)
    assert "ollama:qwen2.5-coder:14b" in cfg.tasks["blog-writer"].candidates
    assert len({f.kind for f in FAULTS}) == 12 and len(FAULTS) == 19


def test_the_double_reads_counts_and_loses_the_front_of_an_overflowing_prompt() -> None:
    rng = random.Random(0)
    template = "## Trends\n- <signal> — count=<n>: one line\n\n"
    starved = templated(template + "- red loafers (count=1)\n- silk scarves (count=1)\n", rng, True)
    assert starved is not None and "No trends visible" in starved
    fed = templated(template + "- red loafers (count=6)\n- silk scarves (count=1)\n", rng, True)
    assert fed is not None and "- red loafers — count=6" in fed and "No trends" not in fed
    long = Request("ollama:gemma3:12b", [{"role": "user", "content": "INSTRUCTIONS\n" + "word " * 5000}],
                   {"num_ctx": 1000})
    assert "INSTRUCTIONS" not in overflowed(long).prompt and len(overflowed(long).prompt) == 4000
    short = Request("ollama:gemma3:12b", [{"role": "user", "content": "INSTRUCTIONS\nword"}], {"num_ctx": 1000})
    assert overflowed(short) is short


def test_the_double_asks_about_urls_only_when_the_collector_leaks_them() -> None:
    quiz = "Q1: <question>\nA1: <answer>\n\n"
    points = "".join(f"- point {i}\n" for i in range(3))
    leaked = "=== a.md ===\n## Key Points\n" + points + "## Key Sources\n- https://example.org — manual\n"
    answer = templated(quiz + leaked * 3, random.Random(0), True)
    assert answer is not None and "https://" in answer
    clean = templated(quiz + ("=== a.md ===\n## Key Points\n" + points) * 3, random.Random(0), True)
    assert clean is not None and "https://" not in clean and clean.count("\nQ") == 4
