"""Model swaps pick the best candidate, not the first: ranked by their recorded runs on the task and by a health
probe of their backend; an unreachable backend, a model that misses the contract here or one a cycle already
tried is never picked, and a coder model with no history on a prose task comes last. Ranking is a pure function;
the end-to-end case runs diagnosis on a real store with the pool served by a loopback Ollama server."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.backends.base import Health
from adapters.backends.ollama_backend import OllamaBackend
from adapters.backends.registry import ModelRouter
from daemon.bootstrap import Services, bootstrap, diagnose_deps, register_tasks
from domain.delta_codec import delta_json
from domain.runs import RunResult, Score
from handlers.candidates import Candidate, best, is_coder, rank, tried_models
from handlers.diagnose import diagnose
from handlers.proposers import rules
from testbed.servers import OllamaServer
from tests.collector_vault import make

PROSE = {"model": "ollama:bad", "candidates": ["ollama:bad", "ollama:qwen2.5-coder:14b", "ollama:fresh",
                                               "ollama:good", "ollama:ok"]}
STATS = {"ollama:bad": {"runs": 6, "pass_rate": 0.0, "mean_score": 1.5},
         "ollama:good": {"runs": 4, "pass_rate": 1.0, "mean_score": 4.5},
         "ollama:ok": {"runs": 5, "pass_rate": 0.6, "mean_score": 3.9},
         "ollama:flaky": {"runs": 3, "pass_rate": 0.33, "mean_score": 2.0}}


def up(_: str) -> Health:
    return Health("up", "answers")


def order(ranked: list[Candidate]) -> list[str]:
    return [c.model for c in ranked if not c.excluded]


def test_history_first_then_untried_then_a_coder_on_prose() -> None:
    ranked = rank(PROSE, STATS, probe=up)
    assert order(ranked) == ["ollama:good", "ollama:ok", "ollama:fresh", "ollama:qwen2.5-coder:14b"]
    why = {c.model: c.excluded for c in ranked if c.excluded}
    assert why["ollama:bad"] == "the task's model" and why["ollama:flaky"].startswith("misses the contract")


@pytest.mark.parametrize(("case", "config", "stats", "probe", "tried", "bad", "expected"), [
    ("an unreachable backend is never picked", PROSE, STATS,
     lambda m: Health("down", "unreachable") if m == "ollama:good" else Health("up", ""), {}, (), "ollama:ok"),
    ("a model tried before is skipped", PROSE, STATS, up, {"ollama:good": "discarded"}, (), "ollama:ok"),
    ("wrong_model names it", PROSE, STATS, up, {}, ("ollama:good",), "ollama:ok"),
    ("no history anywhere: a reachable non-coder", {**PROSE, "candidates": ["ollama:deepseek-coder", "ollama:new"]},
     {}, up, {}, (), "ollama:new"),
    ("a coder is fine for JSON", {"model": "ollama:x", "candidates": ["ollama:starcoder2", "ollama:y"],
                                  "expect": {"json_schema": {"type": "object"}}},
     {"ollama:starcoder2": {"runs": 3, "pass_rate": 1.0, "mean_score": 4.0}}, up, {}, (), "ollama:starcoder2"),
    ("reachable before unprobeable", {"model": "x:a", "candidates": ["x:b", "x:c"]}, {},
     lambda m: Health("unknown", "") if m == "x:b" else Health("up", ""), {}, (), "x:c"),
    ("every candidate down", PROSE, STATS, lambda m: Health("down", "refused"), {}, (), None),
])
def test_ranking_cases(case: str, config: dict[str, Any], stats: dict[str, Any], probe: Callable[[str], Health],
                       tried: dict[str, str], bad: tuple[str, ...], expected: str | None) -> None:
    pick = best(rank(config, stats, bad=bad, tried=tried, probe=probe))
    assert (pick.model if pick else None) == expected, case


@pytest.mark.parametrize(("model", "coder"), [
    ("ollama:qwen2.5-coder:14b", True), ("ollama:codellama:7b", True), ("openai:deepseek-coder@http://h/v1", True),
    ("ollama:starcoder2:3b", True), ("ollama:gemma3:12b", False), ("anthropic:claude-sonnet-4-5", False),
])
def test_coder_models_are_recognised_by_name(model: str, coder: bool) -> None:
    assert is_coder(model) is coder


# ---- end to end: diagnosis on a real store, the pool behind a loopback server --------------------------------

PROMPT = "Write 1 to 3 notes, each exactly in this format:\n\n=== NOTE: <Title> ===\n# <Title>\n\n{context}\n"


POOL = ["ollama:unified-4b", "ollama:qwen2.5-coder:7b", "ollama:gemma3:12b", "ollama:mistral:7b", "ollama:offline:1b"]


def services(tmp: Path, prompt: str, regex: str, output: str) -> Generator[Services, None, None]:
    """One task whose model (ollama:unified-4b) wrote `output` in six runs; the pool served by a loopback server
    that has every member but `offline:1b`."""
    v = make(tmp, {"scripts/c.sh": "#!/bin/sh\necho 'topics: caching, queues'\n"}, collect="scripts/c.sh",
             prompt=prompt, model="ollama:unified-4b", candidates=POOL, expect={"blocks": {"regex": regex, "min": 1}})
    with OllamaServer(models=["unified-4b", "qwen2.5-coder:7b", "gemma3:12b", "mistral:7b"]) as server:
        router = ModelRouter()
        router.register("ollama", OllamaBackend(server.host, timeout=10))
        svc = bootstrap(v.config, env={}, models=router, store_url=f"sqlite:///{tmp / 'events.db'}")
        register_tasks(svc.store, svc.config)
        for day in range(10, 16):
            run = RunResult(run_id=f"r{day}", task="t", started=f"2026-03-{day}T02:00:00Z", status="ok",
                            model="ollama:unified-4b", options={}, output=output.format(day=day),
                            done_reason="stop", prompt_tokens=40, output_tokens=9)
            svc.store.record_run(run)
            svc.store.record_score("t", Score(run.run_id, 1.5, "test"))
        svc.projections.catch_up()
        yield svc
        svc.close()


@pytest.fixture
def seeder(tmp_path: Path) -> Iterator[Services]:
    """The task's model never writes a NOTE block the prompt shows."""
    yield from services(tmp_path, PROMPT, "^=== NOTE: (.+) ===$", "**Note 1: caching {day}**\ntext")


def swap_target(svc: Services) -> str | None:
    ev = diagnose("t", diagnose_deps(svc))
    change = rules.swap_model(ev, rules.base_texts(ev))
    return change.meta["model"] if change else None


def discard(svc: Services, key: str) -> None:
    """A cycle proposed the swap diagnosis proposes now, and verification discarded it."""
    ev = diagnose("t", diagnose_deps(svc))
    change = rules.swap_model(ev, rules.base_texts(ev))
    assert change is not None
    delta = rules.to_delta(ev, [change])
    svc.store.start_cycle(key, "t", "cycle", None, "test")
    blob = svc.store.blobs.put(delta_json(delta, {"vault.yml": ev.config_text}))
    svc.store.update_cycle(key, lambda c: c.proposed(delta_hash=delta.content_hash, proposer="rules", lever="model",
                                                     rationale="", cost={}, delta_blob=blob,
                                                     description=delta.description))
    svc.store.update_cycle(key, lambda c: c.discarded(reason="no effect"))


def test_after_a_discard_the_next_candidate_is_tried(seeder: Services) -> None:
    ev = diagnose("t", diagnose_deps(seeder))
    ranked = {c["model"]: c for c in ev.candidates}
    assert ranked["ollama:offline:1b"]["health"] == "down"  # the server has no such model: never a candidate
    assert swap_target(seeder) == "ollama:gemma3:12b"  # no history for any: the first reachable non-coder
    discard(seeder, "c1")
    assert tried_models(seeder.store, "t") == {"ollama:gemma3:12b": "discarded"}
    assert swap_target(seeder) == "ollama:mistral:7b"
    discard(seeder, "c2")
    assert swap_target(seeder) == "ollama:qwen2.5-coder:7b"  # the coder only once the others were tried
    discard(seeder, "c3")
    assert swap_target(seeder) is None  # nothing left: no duplicate proposal


TABLE = ("Fill in the budget table for {date}, one row per category:\n\n| Category | Budget | Spent |\n|---|---|---|\n"
         "| <category> | <budget> | <spent> |\n\n{context}\n")
TOOL = "Use the Write tool to save one budget row per category to Finance/budget.md.\n\n{context}\n"
ROWS = r"^\| [A-Z][a-z]+ \| [0-9]+ \| [0-9]+ \|$"


def test_a_model_that_never_meets_a_format_the_prompt_describes_is_swapped(tmp_path: Path) -> None:
    """The table the prompt shows has slots where the contract wants numbers; the model missed it in every run
    and nothing else explains it: the swap is the hypothesis."""
    svc = next(gen := services(tmp_path, TABLE, ROWS, "Category: Food, about {day} pounds"))
    try:
        assert swap_target(svc) == "ollama:gemma3:12b"
    finally:
        gen.close()


def test_a_tool_instruction_is_the_prompts_fault_not_the_models(tmp_path: Path) -> None:
    svc = next(gen := services(tmp_path, TOOL, ROWS, "I saved the rows with the Write tool ({day})."))
    try:
        assert swap_target(svc) is None
    finally:
        gen.close()
