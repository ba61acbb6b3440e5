"""LLM proposers through the real clients against the loopback Anthropic / Ollama / OpenAI servers: a good
structured answer becomes a Delta made against the evidence's hashes; every bad one becomes a Rejection."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.backends.anthropic_backend import AnthropicBackend
from adapters.backends.ollama_backend import OllamaBackend
from adapters.backends.openai_backend import OpenAIBackend
from adapters.backends.registry import ModelRouter
from domain.ids import sha256_text
from handlers.proposers.llm import ANSWER_SCHEMA, LLMProposer, Proposal
from handlers.proposers.validate import config_scope_problem
from testbed.servers.anthropic_server import TEST_KEY, AnthropicServer
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.openai_server import OpenAIServer
from testbed.servers.protocol import Reply, Request

pytest_plugins = ["tests.server_fixtures"]

KEY_ENV = "AUTOVAULT_TEST_ANTHROPIC_KEY"
PROMPT = "Write a morning briefing.\nExample:\n## Weather\nSunny, 21C.\n---\nUse the notes below.\n"
CONFIG = """vault: .
tasks:
  morning-briefing:
    prompt: prompts/morning-briefing.md
    model: ollama:qwen3:8b
    options:
      num_predict: 300
  weekly-review:
    prompt: prompts/weekly-review.md
    model: ollama:qwen3:8b
    options:
      num_predict: 300
"""
EDITABLE = ["prompts/**", "configs/**", "scripts/**", "data/**"]


@dataclass(frozen=True)
class Pack:
    """The evidence protocol: task, files {path: (text, sha256)}, signatures, to_prompt(max_chars)."""

    task: str
    files: Mapping[str, tuple[str, str]]
    signatures: tuple[str, ...] = ("truncated", "copied_example")
    tasks: tuple[str, ...] = field(default=("morning-briefing",))

    def to_prompt(self, max_chars: int) -> str:
        parts = [f"Signatures: {', '.join(self.signatures)}"]
        parts += [f"--- {path} ---\n{text}" for path, (text, _) in self.files.items()]
        return "\n\n".join(parts)[:max_chars]


def pack() -> Pack:
    files = {"prompts/morning-briefing.md": PROMPT, "vault.yml": CONFIG}
    return Pack("morning-briefing", {p: (t, sha256_text(t)) for p, t in files.items()})


def answer(*edits: dict[str, Any], lever: str = "prompt") -> str:
    return json.dumps({"lever": lever, "description": "forbid copying the example",
                       "rationale": "copied_example: the output repeats the example", "edits": list(edits)})


FIX: dict[str, Any] = {"path": "prompts/morning-briefing.md", "in_config": False, "search": "Use the notes below.",
       "replace": "Do not copy the example; use the notes below."}
FIXED = PROMPT.replace("Use the notes below.", "Do not copy the example; use the notes below.")


def replying(text: str) -> Callable[[Request], Reply]:
    return lambda _req: Reply(text=text)


def router(ollama: OllamaServer | None = None, anthropic: AnthropicServer | None = None,
           openai: OpenAIServer | None = None, key: str = TEST_KEY) -> ModelRouter:
    r = ModelRouter()
    if ollama is not None:
        r.register("ollama", OllamaBackend(ollama.host, 10))
    if anthropic is not None:
        r.register("anthropic", AnthropicBackend(api_key_env=KEY_ENV, base_url=anthropic.url, timeout=10,
                                                 max_tokens=1024, env={KEY_ENV: key}, max_retries=0))
    if openai is not None:
        r.register("openai", OpenAIBackend(base_url=openai.base_url, timeout=10, env={}, api_key_env=None))
    return r


def ollama_proposal(server: OllamaServer, text: str, tmp_path: Path | None = None, **kw: Any) -> Proposal:
    server.responder = replying(text)
    proposer = LLMProposer("ollama:qwen3:8b", router(ollama=server).complete, EDITABLE, ["scripts/**"],
                           root=tmp_path, **kw)
    return proposer.propose(pack())


def rejected_kind(p: Proposal) -> str:
    assert p.deltas == [] and len(p.rejections) == 1, p
    return p.rejections[0].kind


# ---- good answers ---------------------------------------------------------------------------------


def test_anthropic_tool_use_answer_is_a_delta(anthropic_server: AnthropicServer) -> None:
    anthropic_server.responder = replying(answer(FIX))
    proposer = LLMProposer("anthropic:claude-test", router(anthropic=anthropic_server).complete, EDITABLE)
    result = proposer.propose(pack())
    assert result.rejections == []
    [delta] = result.deltas
    [edit] = delta.edits
    assert (edit.path, edit.in_config, edit.after) == ("prompts/morning-briefing.md", False, FIXED)
    assert edit.before_hash == sha256_text(PROMPT)
    assert (delta.task, delta.lever, delta.proposer) == ("morning-briefing", "prompt", "anthropic:claude-test")
    assert delta.signatures == ("truncated", "copied_example")
    body = anthropic_server.calls("/v1/messages")[-1].json()
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert body["tools"][0]["input_schema"] == ANSWER_SCHEMA
    assert "--- prompts/morning-briefing.md ---" in body["messages"][0]["content"]
    assert "ONE atomic change" in body["system"]
    assert result.cost.calls == 1 and result.cost.prompt_tokens > 0 and result.cost.output_tokens > 0
    assert delta.meta["cost"]["calls"] == 1 and delta.meta["answer_sha256"]


def test_ollama_json_answer_is_a_delta_with_format_schema(ollama_server: OllamaServer) -> None:
    cfg_edit = {"path": "vault.yml", "in_config": True,
                "search": "  morning-briefing:\n    prompt: prompts/morning-briefing.md\n    model: ollama:qwen3:8b\n"
                          "    options:\n      num_predict: 300",
                "replace": "  morning-briefing:\n    prompt: prompts/morning-briefing.md\n    model: ollama:qwen3:8b\n"
                           "    options:\n      num_predict: 600\n      think: false"}
    result = ollama_proposal(ollama_server, answer(cfg_edit, lever="config"))
    assert result.rejections == []
    [edit] = result.deltas[0].edits
    assert edit.in_config and edit.path == "vault.yml" and edit.before_hash == sha256_text(CONFIG)
    assert "num_predict: 600\n      think: false" in (edit.after or "")
    assert edit.after and edit.after.count("num_predict: 300") == 1  # the other task's block is untouched
    body = ollama_server.calls("/api/chat")[-1].json()
    assert body["format"] == ANSWER_SCHEMA and body["options"]["num_predict"] == 2048
    assert result.deltas[0].meta["cost"]["output_tokens"] > 0


def test_openai_json_answer_is_a_delta(openai_server: OpenAIServer) -> None:
    openai_server.responder = replying(answer(FIX))
    proposer = LLMProposer("openai:local", router(openai=openai_server).complete, EDITABLE)
    [delta] = proposer(pack())
    assert delta.edits[0].after == FIXED and proposer.last_rejections == []
    body = openai_server.calls("/v1/chat/completions")[-1].json()
    assert body["response_format"]["json_schema"]["schema"] == ANSWER_SCHEMA


def test_new_file_under_an_editable_glob_has_no_before_hash(ollama_server: OllamaServer, tmp_path: Path) -> None:
    new = {"path": "scripts/post.py", "content": "print('ok')\n"}
    [delta] = ollama_proposal(ollama_server, answer(new, lever="postprocess"), tmp_path).deltas
    assert delta.edits[0].before_hash is None and delta.meta["approve"] == ["scripts/post.py"]


# ---- rejections -----------------------------------------------------------------------------------


def test_truncated_answer_is_rejected_even_if_it_parses(ollama_server: OllamaServer) -> None:
    text = answer(FIX)
    result = ollama_proposal(ollama_server, text, num_predict=5)
    assert rejected_kind(result) == "truncated"
    assert result.rejections[0].answer_sha256 is not None and result.cost.calls == 1


def test_truncated_anthropic_tool_answer_is_rejected(anthropic_server: AnthropicServer) -> None:
    anthropic_server.responder = replying(answer(FIX))
    proposer = LLMProposer("anthropic:m", router(anthropic=anthropic_server).complete, EDITABLE, num_predict=4)
    assert proposer(pack()) == [] and proposer.last_rejections[0].kind == "truncated"


def test_malformed_json_is_rejected_with_the_answer_hash(ollama_server: OllamaServer) -> None:
    text = '{"lever": "prompt", "edits": [ oops'
    result = ollama_proposal(ollama_server, text)
    assert rejected_kind(result) == "malformed"
    assert result.rejections[0].answer_sha256 == sha256_text(text) and result.rejections[0].answer == text


@pytest.mark.parametrize("bad", [
    {"lever": "vibes", "description": "d", "rationale": "r", "edits": [FIX]},
    {"lever": "prompt", "description": "d", "rationale": "r", "edits": []},
    {"lever": "prompt", "description": "d", "rationale": "r", "edits": [{"path": "prompts/morning-briefing.md"}]},
    {"lever": "prompt", "description": "d", "edits": [FIX]},
])
def test_answer_not_matching_the_schema_is_rejected(ollama_server: OllamaServer, bad: dict[str, Any]) -> None:
    assert rejected_kind(ollama_proposal(ollama_server, json.dumps(bad))) == "schema"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "prompts/../../x.md", "~/.ssh/id_rsa",
                                  "C:\\Windows\\x", "prompts\\..\\..\\x"])
def test_path_escape_is_rejected(ollama_server: OllamaServer, path: str) -> None:
    result = ollama_proposal(ollama_server, answer({"path": path, "content": "root::0:0::/:/bin/sh\n"}))
    assert rejected_kind(result) == "escape"


def test_symlink_out_of_the_vault_is_rejected(ollama_server: OllamaServer, tmp_path: Path) -> None:
    vault, outside = tmp_path / "vault", tmp_path / "outside"
    (vault / "prompts").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, vault / "prompts" / "shared")
    result = ollama_proposal(ollama_server, answer({"path": "prompts/shared/x.md", "content": "x\n"}), vault)
    assert rejected_kind(result) == "escape"
    assert not (outside / "x.md").exists()


def test_non_editable_path_is_rejected(ollama_server: OllamaServer) -> None:
    result = ollama_proposal(ollama_server, answer({"path": "Briefings/2026-03-18.md", "content": "fake\n"}))
    assert rejected_kind(result) == "not_editable"
    assert "research.editable" in result.rejections[0].reason


def test_in_config_edit_of_another_file_is_rejected(ollama_server: OllamaServer) -> None:
    edit = {"path": "prompts/morning-briefing.md", "in_config": True, "search": "Use", "replace": "Take"}
    assert rejected_kind(ollama_proposal(ollama_server, answer(edit))) == "not_editable"


def test_noop_edit_is_rejected(ollama_server: OllamaServer) -> None:
    edit = {**FIX, "replace": FIX["search"]}
    assert rejected_kind(ollama_proposal(ollama_server, answer(edit))) == "noop"


def test_search_text_not_found_is_rejected(ollama_server: OllamaServer) -> None:
    edit = {**FIX, "search": "Use the  notes below."}  # one space off: not an exact copy
    assert rejected_kind(ollama_proposal(ollama_server, answer(edit))) == "search_missing"


def test_ambiguous_search_text_is_rejected(ollama_server: OllamaServer) -> None:
    edit = {**FIX, "search": "the"}
    result = ollama_proposal(ollama_server, answer(edit))
    assert rejected_kind(result) == "search_ambiguous" and "occurs 2 times" in result.rejections[0].reason


def test_edit_of_a_file_not_in_the_evidence_is_rejected(ollama_server: OllamaServer, tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "weekly-review.md").write_text("Review the week.\n")
    search = {"path": "prompts/weekly-review.md", "in_config": False, "search": "week", "replace": "month"}
    assert rejected_kind(ollama_proposal(ollama_server, answer(search), tmp_path)) == "not_in_evidence"
    whole = {"path": "prompts/weekly-review.md", "content": "Review the month.\n"}
    assert rejected_kind(ollama_proposal(ollama_server, answer(whole), tmp_path)) == "not_in_evidence"


def test_in_config_edit_to_another_task_is_rejected(ollama_server: OllamaServer) -> None:
    edit = {"path": "vault.yml", "in_config": True,
            "search": "prompt: prompts/weekly-review.md\n    model: ollama:qwen3:8b\n    options:\n      num_predict: 300",
            "replace": "prompt: prompts/weekly-review.md\n    model: ollama:qwen3:8b\n    options:\n      num_predict: 900"}
    result = ollama_proposal(ollama_server, answer(edit, lever="config"))
    assert rejected_kind(result) == "config_scope" and "weekly-review" in result.rejections[0].reason


def test_config_scope_rules() -> None:
    top = CONFIG.replace("vault: .", "vault: ..")
    assert "top-level keys vault" in (config_scope_problem(CONFIG, top, "morning-briefing", "vault.yml") or "")
    added = CONFIG + "  intruder:\n    prompt: p.md\n    model: ollama:x\n"
    assert "intruder" in (config_scope_problem(CONFIG, added, "morning-briefing", "vault.yml") or "")
    removed = CONFIG.replace("  morning-briefing:", "  morning:")
    assert "removes or renames" in (config_scope_problem(CONFIG, removed, "morning-briefing", "vault.yml") or "")
    assert "not valid YAML" in (config_scope_problem(CONFIG, "tasks: [", "morning-briefing", "vault.yml") or "")
    own = CONFIG.replace("num_predict: 300", "num_predict: 600", 1)
    assert config_scope_problem(CONFIG, own, "morning-briefing", "vault.yml") is None


def test_backend_failure_is_a_rejection_not_an_exception(closed_port_url: str) -> None:
    r = ModelRouter()
    r.register("ollama", OllamaBackend(closed_port_url, 5))
    result = LLMProposer("ollama:qwen3:8b", r.complete, EDITABLE).propose(pack())
    assert rejected_kind(result) == "backend" and result.rejections[0].answer_sha256 is None


# ---- secrets --------------------------------------------------------------------------------------


def test_api_key_never_appears_in_a_rejection_or_a_log(anthropic_server: AnthropicServer) -> None:
    leaky = answer({"path": f"../{TEST_KEY}.md", "content": "x"})  # a model echoing a secret into a path
    anthropic_server.responder = replying(leaky)
    complete = router(anthropic=anthropic_server).complete
    proposer = LLMProposer("anthropic:m", complete, EDITABLE, secrets=[TEST_KEY])
    wrong = LLMProposer("anthropic:m", router(anthropic=anthropic_server, key=TEST_KEY + "-wrong").complete,
                        EDITABLE, secrets=[TEST_KEY + "-wrong"])
    with capture_logs() as logs:
        leaked = proposer.propose(pack())
        refused = wrong.propose(pack())
    assert rejected_kind(leaked) == "escape" and rejected_kind(refused) == "backend"
    assert "401" in refused.rejections[0].reason
    seen = repr(leaked.rejections) + repr(refused.rejections) + repr(logs) + str(leaked.rejections[0].answer)
    assert [e["kind"] for e in logs if e["event"] == "proposal rejected"] == ["escape", "backend"]
    assert TEST_KEY not in seen
    for rec in anthropic_server.calls("/v1/messages"):  # the key travels in headers only, never in the prompt
        assert TEST_KEY not in rec.text


# ---- the real embedded model ----------------------------------------------------------------------


@pytest.mark.embedded
def test_embedded_model_returns_a_delta_or_a_recorded_rejection() -> None:
    from adapters.backends.embedded import EmbeddedBackend

    r = ModelRouter()
    r.register("embedded", EmbeddedBackend(n_ctx=2048, threads=2))
    proposer = LLMProposer("embedded:smollm2-135m", r.complete, EDITABLE, num_predict=160, max_chars=800)
    result = proposer.propose(pack())
    assert len(result.deltas) + len(result.rejections) == 1 and result.cost.calls == 1
    for delta in result.deltas:
        assert all(e.path in ("prompts/morning-briefing.md", "vault.yml") or e.before_hash is None
                   for e in delta.edits)


# ---- wiring from vault.yml ------------------------------------------------------------------------


def test_proposer_from_services_reads_vault_yml_when_the_evidence_lacks_it(
    ollama_server: OllamaServer, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from adapters.config_loader import load_config
    from handlers.proposers.llm import proposer

    (tmp_path / "prompts").mkdir()
    for name in ("morning-briefing", "weekly-review"):
        (tmp_path / "prompts" / f"{name}.md").write_text(PROMPT)
    (tmp_path / "vault.yml").write_text(CONFIG)
    config = load_config(tmp_path / "vault.yml", env={})
    svc = SimpleNamespace(config=config, models=router(ollama=ollama_server), env={})
    assert proposer("anthropic", svc).spec == "anthropic:claude-sonnet-5-5"
    assert proposer("embedded", svc).max_chars < 12000
    ollama = proposer("ollama", svc)
    assert ollama.spec == "ollama:qwen3:8b"  # the model the vault already uses
    edit = {"path": "vault.yml", "in_config": True, "search": "num_predict: 300\n  weekly",
            "replace": "num_predict: 600\n  weekly"}
    ollama_server.responder = replying(answer(edit, lever="config"))
    evidence = Pack("morning-briefing", {"prompts/morning-briefing.md": (PROMPT, sha256_text(PROMPT))})
    [delta] = ollama(evidence)
    assert delta.edits[0].before_hash == sha256_text(CONFIG) and delta.edits[0].in_config
    assert ollama_server.calls("/api/chat")[-1].json()["think"] is False


def test_two_edits_of_one_file_apply_in_order_into_one_file_edit(ollama_server: OllamaServer) -> None:
    second = {"path": "prompts/morning-briefing.md", "in_config": False, "search": "Do not copy the example;",
              "replace": "Do not copy the example (structure only);"}
    [delta] = ollama_proposal(ollama_server, answer(FIX, second)).deltas
    [edit] = delta.edits
    assert edit.after == FIXED.replace("example;", "example (structure only);")


def test_evidence_file_entries_may_be_objects_and_config_text_an_attribute() -> None:
    from handlers.proposers.llm import known_files

    @dataclass(frozen=True)
    class FileText:
        text: str
        sha256: str

    @dataclass(frozen=True)
    class Other:
        task: str
        files: Mapping[str, FileText]
        config_text: str

    ev = Other("morning-briefing", {"prompts/morning-briefing.md": FileText(PROMPT, "h1")}, CONFIG)
    known = known_files(ev, "vault.yml").files
    assert known == {"prompts/morning-briefing.md": (PROMPT, "h1"), "vault.yml": (CONFIG, sha256_text(CONFIG))}


# ---- the diagnosis' own Evidence ------------------------------------------------------------------


def diagnosed(files: dict[str, Any]) -> Any:
    from handlers.evidence import Evidence, SignatureNote

    sig = SignatureNote("copied_example", "high", "prompt", "output repeats the example", "runs")
    return Evidence(task="morning-briefing", tasks=("morning-briefing",), why="lowest score", score=2.0,
                    config_name="vault.yml", config_block="", config={}, signatures=(sig,), failing_checks=(),
                    judge_reasons=(), runs=(), model_stats={}, upstream=(), downstream=(), files=files,
                    script_inputs={}, input_headings=(), data_audit=None, mined=(), editable=tuple(EDITABLE),
                    approve=(), output_tokens_complete=())


def test_diagnose_evidence_and_clipped_files(ollama_server: OllamaServer, tmp_path: Path) -> None:
    from handlers.evidence import FileText

    full = PROMPT + "\n".join(f"Note line {i}." for i in range(50)) + "\n"
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "morning-briefing.md").write_text(full)
    clipped = FileText("prompts/morning-briefing.md", full[:200], sha256_text(full), "prompt", complete=False)
    cfg = FileText("vault.yml", CONFIG, sha256_text(CONFIG), "config", in_config=True)
    evidence = diagnosed({clipped.path: clipped, "vault.yml": cfg})
    ollama_server.responder = replying(answer(FIX))
    complete = router(ollama=ollama_server).complete
    without_root = LLMProposer("ollama:qwen3:8b", complete, EDITABLE).propose(evidence)
    assert rejected_kind(without_root) == "clipped"  # never cut a file down to its excerpt
    [delta] = LLMProposer("ollama:qwen3:8b", complete, EDITABLE, root=tmp_path)(evidence)
    assert delta.edits[0].after == full.replace(FIX["search"], FIX["replace"])
    assert delta.edits[0].before_hash == sha256_text(full) and delta.signatures == ("copied_example",)
    (tmp_path / "prompts" / "morning-briefing.md").write_text(full + "human edit\n")  # changed since diagnosis
    assert rejected_kind(LLMProposer("ollama:qwen3:8b", complete, EDITABLE, root=tmp_path).propose(evidence)) == "clipped"
    assert "### prompts/morning-briefing.md" in ollama_server.calls("/api/chat")[-1].json()["messages"][1]["content"]
