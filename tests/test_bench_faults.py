"""The fault benchmark, small: a few household faults end to end through the code `make bench-faults` runs (the
vault copy, the loopback Ollama double through the real ollama client, the loop, approval, the rerun after it),
and the parts that decide "found", "fixed" and "harmful"."""

from __future__ import annotations

import json
import re
from pathlib import Path

from adapters.config_loader import load_config
from benchmarks.bench_faults import FaultRow, Step, data_problems, producers_first, run_bench, summary
from benchmarks.fault_vault import (
    FAULTS,
    FLAWED,
    GOOD_MODEL,
    HOUSEHOLD,
    SEED,
    Fault,
    make_bench_vault,
    make_fault_vault,
)
from handlers.cycle import CycleResult

SUMMARY = re.compile(r"^faults: vault=(\w+) kinds=(\d+) found=(\d+) fixed=(\d+) harmful=(\d+) cycles=(\d+) "
                     r"per_fix=\S+ faults_found=(\d+)/(\d+) faults_fixed=(\d+)/(\d+) calls=(\d+) time=\d+s$")


def test_household_faults_are_found_fixed_by_a_rerun_and_summarised(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_bench(tmp_path, vault=HOUSEHOLD, only=("meal-plan",), max_cycles=3, out=lines.append)
    m = SUMMARY.match(lines[-1])
    assert m is not None, lines[-1]
    assert m.group(1) == "household" and int(m.group(2)) == 1 and int(m.group(5)) == 0  # one kind, no harm
    assert int(m.group(6)) == len(result["steps"]) and int(m.group(8)) == 1
    rows = {r.fault.id: r for r in result["rows"]}
    assert set(rows) == {"H01"} and all(r.found for r in rows.values())
    plan = rows["H01"]
    assert plan.fixed and plan.fixed_by and plan.fixed_by[0].result.delta is not None
    assert plan.fixed_by[0].result.delta.lever == "config"
    cfg = load_config(tmp_path / "vault.yml", {})
    assert (cfg.tasks["meal-plan"].options.num_predict or 0) > 160
    live = (tmp_path / "vault" / "Meals" / f"plan-{HOUSEHOLD.run_date}.md").read_text()
    assert "## Sunday" in live  # the rerun after the loop wrote the whole week
    assert summary(lines[-1])["vault"] == "household"


def test_a_fault_is_fixed_only_when_the_rerun_no_longer_shows_it() -> None:
    f = Fault("X1", "copied-example", "t", ("copied_example",), ("distinct_from_previous",), absent=("ollama:coder",))
    kept = Step(1, CycleResult(key="k", task="t", outcome="kept"))
    assert FaultRow(f, found_as=["copied_example"], fixed_by=[kept]).fixed
    assert not FaultRow(f, found_as=[], fixed_by=[kept]).fixed  # never found, never fixed
    assert not FaultRow(f, found_as=["copied_example"], open_after=["copied_example"], fixed_by=[kept]).fixed
    assert not FaultRow(f, found_as=["copied_example"], failing_after=["distinct_from_previous"]).fixed
    assert not FaultRow(f, found_as=["copied_example"], present_after=["ollama:coder"]).fixed
    assert not FaultRow(f, found_as=["copied_example"], rerun_status="failed").fixed
    assert not FaultRow(f, found_as=["copied_example"], data_problems=["x"]).fixed


def test_mined_examples_that_fail_the_contract_keep_a_data_fault_open(tmp_path: Path) -> None:
    cfg_path = make_bench_vault(HOUSEHOLD, tmp_path, "http://127.0.0.1:9")
    cfg = load_config(cfg_path, {})
    data = tmp_path / "vault" / "data" / "bills.jsonl"
    before = {"data/bills.jsonl": data.read_text()}
    assert any("examples < min_examples" in p for p in data_problems(cfg, "bills-digest", before))
    good = [json.dumps({"prompt": f"p{i}", "completion": f"- Northern Water: 4{i}.10 due 2026-05-2{i}\n"
                        f"- City Energy: 11{i}.35 due 2026-05-1{i}\n- Mobile Plus: 24.00 due 2026-05-16"})
            for i in range(6)]
    data.write_text(before["data/bills.jsonl"] + "\n".join(good) + "\n")
    assert data_problems(cfg, "bills-digest", before) == []
    leaky = json.dumps({"prompt": "p", "completion": "- [Payee]: [Amount] due [Due date]\n" * 3})
    data.write_text(data.read_text() + leaky + "\n")
    problems = data_problems(cfg, "bills-digest", before)
    assert len(problems) == 1 and "placeholder_leak" in problems[0] and ":13 added" in problems[0]


def test_reruns_go_producers_first() -> None:
    cfg = load_config(Path(__file__).resolve().parents[1] / HOUSEHOLD.config, {})
    order = producers_first(cfg, sorted(cfg.tasks))
    assert order.index("kids-news") < order.index("newsletter") < order.index("household-judge")
    assert order.index("trip-planner") < order.index("packing-list")


def test_the_copies_run_each_task_on_its_model_against_the_double(tmp_path: Path) -> None:
    cfg = load_config(make_fault_vault(tmp_path / "seed", "http://127.0.0.1:9"), {})
    assert cfg.backends.ollama.host == "http://127.0.0.1:9" and cfg.judge.llm_weight == 0
    for name, task in cfg.tasks.items():
        assert task.model == FLAWED.get(name, GOOD_MODEL)
        assert not any(m.startswith("embedded:") for m in task.candidates)
    assert len({f.kind for f in FAULTS}) == 12 and SEED.faults == FAULTS
    home = load_config(make_bench_vault(HOUSEHOLD, tmp_path / "home", "http://127.0.0.1:9"), {})
    assert not (tmp_path / "home" / "vault" / "vault.yml").exists()  # one live config
    assert home.tasks["recipe-ideas"].model == "ollama:household-1b-q4"  # the household vault keeps its models
    assert home.backends.openai.base_url.startswith("http://127.0.0.1:") and home.research.max_samples == 6
    assert len(HOUSEHOLD.kinds) == 12 and all(sum(f.kind == k for f in HOUSEHOLD.faults) >= 2 for k in HOUSEHOLD.kinds)
