"""The LLM proposer as the general path: structured deltas (a knob, a model swap, the candidate pool, training
examples added or removed) through the real anthropic and ollama clients against loopback servers with scripted
answers, each validated and rejected with a reason when malformed; the measured evidence it is given (failed
checks quoting the output, the collector measurement, what was already tried); and the chain that makes it the
next turn after a rules delta was discarded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.bootstrap import diagnose_deps
from domain.config import TaskConfig
from domain.ids import sha256_text
from handlers.diagnose import diagnose
from handlers.proposers.chain import chain, last_turn
from handlers.proposers.llm import LLMProposer, Proposal
from handlers.verify_data import data_verdict
from testbed.servers.anthropic_server import AnthropicServer
from testbed.servers.ollama_server import OllamaServer
from tests.seed_copy import seed_services
from tests.test_llm_proposer import EDITABLE, Pack, replying, router

pytest_plugins = ["tests.server_fixtures"]

CONFIG = """vault: .
tasks:
  planner:
    prompt: prompts/planner.md
    model: ollama:qwen3:8b
    candidates: [ollama:qwen3:8b, ollama:gemma3:12b, ollama:qwen2.5-coder:14b]
    options: {num_predict: 300}
    training: {data: data/planner.jsonl, label_field: label, min_examples: 3}
  other:
    prompt: prompts/planner.md
    model: ollama:qwen3:8b
    options: {num_predict: 300}
"""
PROMPT = "Plan the week.\n{context}\n"
DATA = "".join(json.dumps({"prompt": f"goals {i}", "completion": c, "label": c.split()[0]}) + "\n"
               for i, c in enumerate(["NO-CHANGE Nothing new.", "NO-CHANGE Nothing new.", "PLAN - book it"]))


def pack() -> Pack:
    files = {"prompts/planner.md": PROMPT, "vault.yml": CONFIG, "data/planner.jsonl": DATA}
    return Pack("planner", {p: (t, sha256_text(t)) for p, t in files.items()}, tasks=("planner",))


def answer(*edits: dict[str, Any], lever: str = "config") -> str:
    return json.dumps({"lever": lever, "description": "structured change", "rationale": "truncated: more room",
                       "edits": list(edits)})


def ask(server: OllamaServer | AnthropicServer, text: str) -> Proposal:
    server.responder = replying(text)
    spec = "anthropic:claude-test" if isinstance(server, AnthropicServer) else "ollama:qwen3:8b"
    client = router(anthropic=server) if isinstance(server, AnthropicServer) else router(ollama=server)
    return LLMProposer(spec, client.complete, EDITABLE).propose(pack())


def block(text: str | None) -> dict[str, Any]:
    return yaml.safe_load(text or "")["tasks"]["planner"]


# ---- structured deltas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["anthropic_server", "ollama_server"])
def test_a_knob_becomes_a_vault_yml_edit_of_the_task_only(server_name: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(server_name)
    result = ask(server, answer({"kind": "option", "option": "num_predict", "value": 600},
                                {"kind": "option", "option": "think", "value": False}))
    assert result.rejections == []
    [edit] = result.deltas[0].edits
    assert edit.in_config and edit.before_hash == sha256_text(CONFIG)
    assert block(edit.after)["options"] == {"num_predict": 600, "think": False}
    assert yaml.safe_load(edit.after or "")["tasks"]["other"]["options"] == {"num_predict": 300}


def test_a_model_swap_within_the_pool_and_a_pool_change(ollama_server: OllamaServer) -> None:
    [delta] = ask(ollama_server, answer({"kind": "model", "model": "ollama:gemma3:12b"}, lever="model")).deltas
    assert block(delta.edits[0].after)["model"] == "ollama:gemma3:12b"
    [delta] = ask(ollama_server, answer({"kind": "candidates", "drop": ["ollama:qwen2.5-coder:14b"],
                                         "add": ["ollama:mistral:7b"]}, lever="candidates")).deltas
    assert block(delta.edits[0].after)["candidates"] == ["ollama:qwen3:8b", "ollama:gemma3:12b", "ollama:mistral:7b"]


def test_training_examples_added_and_removed_are_declared_for_the_audit(ollama_server: OllamaServer) -> None:
    example = {"prompt": "goals 9", "completion": "PLAN - renew the passport", "label": "PLAN"}
    [delta] = ask(ollama_server, answer({"kind": "data_add", "path": "data/planner.jsonl", "examples": [example]},
                                        {"kind": "data_remove", "path": "data/planner.jsonl", "lines": [2]},
                                        lever="data")).deltas
    [edit] = delta.edits
    rows = [json.loads(ln) for ln in (edit.after or "").splitlines()]
    assert rows == [json.loads(DATA.splitlines()[0]), json.loads(DATA.splitlines()[2]), example]
    assert delta.meta["added"] == 1 and delta.meta["removed"] == 1
    task = TaskConfig.model_validate(yaml.safe_load(CONFIG)["tasks"]["planner"])
    _, reason, record = data_verdict(delta, task, {"data/planner.jsonl": DATA}, {"data/planner.jsonl": edit.after or ""})
    assert record["removed"] == 1 and record["added"] == 1 and "more than the proposer declared" not in reason


@pytest.mark.parametrize("edits,kind", [
    ([{"kind": "model", "model": "ollama:llama3:70b"}], "model"),  # not in the pool
    ([{"kind": "candidates", "drop": ["ollama:qwen3:8b"]}], "model"),  # the task's own model
    ([{"kind": "candidates", "drop": ["ollama:nope:1b"]}], "model"),
    ([{"kind": "option", "option": "num_beams", "value": 4}], "schema"),  # no such knob
    ([{"kind": "option", "option": "num_predict", "value": "lots"}], "schema"),
    ([{"kind": "data_remove", "path": "data/planner.jsonl", "lines": [40]}], "data_lines"),
    ([{"kind": "data_add", "path": "data/other.jsonl", "examples": [{"prompt": "p"}]}], "not_in_evidence"),
    ([{"kind": "data_add", "path": "prompts/planner.md", "examples": [{"prompt": "p"}]}], "not_editable"),
    ([{"kind": "data_add", "path": "../data/planner.jsonl", "examples": [{"prompt": "p"}]}], "escape"),
    ([{"kind": "option", "option": "num_predict", "value": 600},
      {"path": "vault.yml", "in_config": True, "search": "num_predict: 300}", "replace": "num_predict: 900}"}], "mixed"),
    ([{"kind": "option", "option": "num_predict", "value": 300}], "noop"),
])
def test_malformed_or_unsafe_structured_edits_are_rejected(ollama_server: OllamaServer, edits: list[dict[str, Any]],
                                                           kind: str) -> None:
    result = ask(ollama_server, answer(*edits))
    assert result.deltas == [] and [r.kind for r in result.rejections] == [kind], result.rejections


# ---- the evidence it is given ------------------------------------------------------------------------------


def test_the_evidence_quotes_failed_checks_and_is_what_the_model_is_sent(tmp_path: Path,
                                                                         anthropic_server: AnthropicServer) -> None:
    svc = seed_services(tmp_path / "seed")
    try:
        ev = diagnose("research-radar", diagnose_deps(svc))
    finally:
        svc.close()
    assert any("code_fences" in d and "```" in d for d in ev.check_details)  # quotes of what the model wrote
    assert any("placeholder_leak" in d and "[Tool]" in d for d in ev.check_details)
    anthropic_server.responder = replying(answer({"kind": "option", "option": "num_predict", "value": 800}))
    proposer = LLMProposer("anthropic:claude-test", router(anthropic=anthropic_server).complete, EDITABLE,
                           max_chars=30_000)
    proposer.propose(ev)
    sent = anthropic_server.calls("/v1/messages")[-1].json()["messages"][0]["content"]
    assert "## Failed checks, quoting the output" in sent and "placeholder_leak —" in sent
    assert '"kind": "option"' in anthropic_server.calls("/v1/messages")[-1].json()["system"]


# ---- the chain: rules first, the LLM after a rules discard ------------------------------------------------


class Ev:
    def __init__(self, tried: tuple[dict[str, Any], ...] = ()) -> None:
        self.task, self.tried = "planner", tried


def test_rules_are_the_first_pass_and_yield_the_next_turn_after_a_discard() -> None:
    asked: list[str] = []

    def rules(_ev: Any) -> list[Any]:
        asked.append("rules")
        return []

    def llm(name: str) -> Any:
        def propose(_ev: Any) -> list[Any]:
            asked.append(name)
            return []
        return propose

    proposers = chain(["rules", "anthropic"], rules, llm)
    assert [n for n, _ in proposers] == ["rules", "anthropic"]
    for _, p in proposers:
        p(Ev())
    assert asked == ["rules", "anthropic"]  # fresh evidence: rules first
    asked.clear()
    discarded = ({"proposer": "rules", "outcome": "discarded"},)
    assert last_turn(Ev(discarded)) == "rules"
    for _, p in proposers:
        p(Ev(discarded))
    assert asked == ["anthropic"]  # the rules had their turn: the LLM goes next
    asked.clear()
    alternated = (*discarded, {"proposer": "anthropic:claude", "outcome": "discarded"})
    for _, p in proposers:
        p(Ev(alternated))
    assert asked == ["rules", "anthropic"]
    only_rules = chain(["rules"], rules, llm)  # no LLM listed: the rules keep every turn
    asked.clear()
    only_rules[0][1](Ev(discarded))
    assert asked == ["rules"]


def test_what_was_tried_since_the_last_change_reaches_the_evidence(tmp_path: Path) -> None:
    from handlers.cycle import run_cycle
    from testbed.cycle_vault import NOISE_PROMPT, make_vault

    fx = make_vault(tmp_path)
    r = run_cycle(fx.deps([("double", lambda ev: [fx.edit("prompts/brief.md", NOISE_PROMPT,
                                                          description="say please")])]), "brief")
    assert r.outcome == "discarded"
    ev = diagnose("brief", diagnose_deps(fx.svc))
    [t] = ev.tried
    assert (t["proposer"], t["outcome"], t["description"]) == ("double", "discarded", "say please")
    assert last_turn(ev) == "double"
    assert "## Already tried since the last kept change" in ev.to_prompt() and "say please" in ev.to_prompt()
    assert diagnose("notes", diagnose_deps(fx.svc)).tried == ()  # another task's cycle is not this task's history
