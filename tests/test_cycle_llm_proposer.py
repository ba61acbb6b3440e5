"""The cycle with the real LLM proposer (handlers.proposers.llm) and a deterministic proposer model: a good
answer is verified and kept; a malformed one is a recorded `Rejected`, never applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.aggregates import Cycle
from domain.ids import sha256_text
from domain.runs import Completion
from handlers.cycle import run_cycle
from handlers.proposers.llm import LLMProposer
from testbed.cycle_vault import BRIEF_PROMPT, make_vault


@dataclass
class Pack:
    task: str
    files: dict[str, tuple[str, str]]
    signatures: list[str]

    def to_prompt(self, max_chars: int) -> str:
        return "\n".join(f"--- {p} ---\n{t}" for p, (t, _) in self.files.items())[:max_chars]


def proposer_model(answer: str) -> Any:
    def complete(spec: str, prompt: Any, options: dict[str, Any], *, json_schema: Any = None) -> Completion:
        return Completion(text=answer, done_reason="stop", prompt_tokens=321, output_tokens=45, model=spec)
    return complete


def test_an_llm_answer_is_verified_kept_and_its_cost_recorded(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    answer = json.dumps({"lever": "prompt", "description": "ask for 40 words", "rationale": "too_short",
                         "edits": [{"path": "prompts/brief.md", "in_config": False,
                                    "search": "for {date}.", "replace": "for {date}. Write at least 40 words."}]})
    llm = LLMProposer("ollama:proposer", proposer_model(answer), ["prompts/**"], root=fx.root)
    deps = fx.deps([("ollama", llm)])
    deps.diagnose = lambda task: Pack(task, {"prompts/brief.md": (BRIEF_PROMPT, sha256_text(BRIEF_PROMPT))},
                                      ["too_short"])
    r = run_cycle(deps, "brief")
    assert r.outcome == "kept", r.reason
    assert "Write at least 40 words." in fx.text("prompts/brief.md")
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None
    proposed = next(e for e in fx.svc.store.events.get(cycle.id) if isinstance(e, Cycle.Proposed))  # type: ignore[attr-defined]
    assert proposed.proposer == "ollama:proposer" and proposed.cost["prompt_tokens"] == 321


def test_a_malformed_llm_answer_is_a_recorded_rejection(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    llm = LLMProposer("ollama:proposer", proposer_model("I think you should improve the prompt."), ["prompts/**"],
                      root=fx.root)
    deps = fx.deps([("ollama", llm)])
    deps.diagnose = lambda task: Pack(task, {"prompts/brief.md": (BRIEF_PROMPT, sha256_text(BRIEF_PROMPT))}, [])
    r = run_cycle(deps, "brief")
    assert r.outcome == "nothing" and r.rejected and r.rejected[0].startswith("ollama:proposer: malformed")
    assert fx.text("prompts/brief.md") == BRIEF_PROMPT
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None
    rejected = [e for e in fx.svc.store.events.get(cycle.id) if isinstance(e, Cycle.Rejected)]  # type: ignore[attr-defined]
    assert len(rejected) == 1 and rejected[0].answer_hash == sha256_text("I think you should improve the prompt.")
