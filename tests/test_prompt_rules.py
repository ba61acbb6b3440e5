"""Detector → rule → fixed prompt, on many shapes of each prompt fault: runs that behave as a flawed model does
with the template (it repeats a slot line, an aside, the example, the fence; it narrates a tool call) give the
signature; the rules proposer's delta removes what the model copied; the detector is silent on runs that follow
the fixed template."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from daemon.bootstrap import diagnose_deps
from domain import prompt_shapes as shapes
from domain.config import TaskConfig
from domain.ids import sha256_text
from domain.signatures import RunView, TaskHistory, detect_signatures
from handlers.diagnose import diagnose
from handlers.evidence import Evidence, FileText, Neighbour, SignatureNote
from handlers.proposers import rules
from tests.seed_copy import seed_services
from tests.test_prompt_shapes import CONDITIONALS, EXAMPLES, SLOTS

PROMPT = "prompts/t.md"
CONFIG = "vault.yml"
BLOCKS = r"^=== ENTRY: (.+) ===$"


def task(**expect: object) -> TaskConfig:
    return TaskConfig(prompt=PROMPT, model="ollama:gemma3:12b", outputs=["Out/*.md"], expect=expect)


def runs(output: str) -> list[RunView]:
    return [RunView(run_id=f"r{d}", task="t", output=output, started=f"2026-05-0{d}T06:00:00Z", context=f"day {d}",
                    artifacts=("Out/x.md",)) for d in (1, 2, 3)]


def evidence(prompt: str, tc: TaskConfig, output: str) -> Evidence:
    sigs = detect_signatures(TaskHistory("t", tc, runs(output), prompt_text=prompt))
    notes = tuple(SignatureNote(s.name, s.severity, s.lever, s.summary, "runs", s.evidence) for s in sigs)
    config_text = "vault: .\ntasks:\n  t:\n    prompt: prompts/t.md\n    model: ollama:gemma3:12b\n"
    files = {PROMPT: FileText(PROMPT, prompt, sha256_text(prompt), "prompt"),
             CONFIG: FileText(CONFIG, config_text, sha256_text(config_text), "config", True)}
    return Evidence(task="t", tasks=("t",), why="test", score=2.0, config_name=CONFIG, config_block="",
                    config=tc.model_dump(mode="json", exclude_defaults=True), signatures=notes, failing_checks=(),
                    judge_reasons=(), runs=(), model_stats={}, upstream=(), downstream=(), files=files,
                    script_inputs={}, input_headings=(), data_audit=None, mined=(), editable=("prompts/**",),
                    approve=(), output_tokens_complete=())


def fixed(ev: Evidence, rule: str) -> str:
    delta = next(d for d in rules.propose(ev) if d.meta.get("rules") == [rule])
    [edit] = [e for e in delta.edits if e.path == PROMPT]
    assert edit.after is not None and "{context}" in edit.after
    return edit.after


def quiet(prompt: str, tc: TaskConfig, output: str, name: str) -> None:
    assert name not in [s.name for s in detect_signatures(TaskHistory("t", tc, runs(output), prompt_text=prompt))]


@pytest.mark.parametrize("line,expected", SLOTS)
def test_a_repeated_slot_line_in_any_shape_is_found_and_fixed(line: str, expected: list[str]) -> None:
    prompt = f"Write the report for {{date}}.\n\n## Items\n{line}\n\n{{context}}\n"
    ev = evidence(prompt, task(), f"## Items\n{line}\n{line}")  # the model repeats the template line
    assert ev.has("placeholder_leak"), line
    after = fixed(ev, "describe_placeholders")
    left = shapes.slots(after)
    leaked_angle = any(s.startswith("<") for s in expected)
    assert left == [] if leaked_angle else all(s.shape == "angle" for s in left)
    quiet(after, task(), "## Items\n- Olive Grove Co-op: 61.20 EUR due 2026-05-14", "placeholder_leak")


@pytest.mark.parametrize("line,alt,cond,negated", CONDITIONALS)
def test_a_repeated_conditional_aside_in_any_shape_is_found_and_fixed(line: str, alt: str, cond: str,
                                                                      negated: bool) -> None:
    prompt = f"Write today's list for {{date}}.\n\n## Today\n{line}\n\n{{context}}\n"
    aside = shapes.conditionals(prompt)[0].text.strip()
    ev = evidence(prompt, task(), f"## Today\n- the boiler service {aside}\n- renew the passport")
    assert ev.has("instruction_leak"), line
    after = fixed(ev, "plain_instructions")
    assert shapes.conditionals(after) == [] and aside not in after
    quiet(after, task(), "## Today\n- the boiler service\n- renew the passport", "instruction_leak")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_copied_example_in_any_shape_is_found_and_fixed(name: str) -> None:
    prompt, inside = EXAMPLES[name]
    section = shapes.example_sections(prompt)[0]
    body = "\n".join(ln.lstrip("> ") for ln in section.lines(prompt) if not shapes.FENCE_LINE.match(ln))
    ev = evidence(prompt, task(), body)  # the model answers with the example, every day alike
    assert ev.has("copied_example") or ev.has("identical_across_days"), name
    after = fixed(ev, "structure_only_example")
    assert shapes.example_sections(after) == [] and inside not in after


@pytest.mark.parametrize("fence", ["```markdown", "```", "~~~", "````md", "```text"])
def test_a_fenced_answer_after_any_fence_shown_is_found_and_fixed(fence: str) -> None:
    close = fence[:4] if fence.startswith("````") else fence[:3]
    prompt = f"Write the digest for {{date}} like this:\n\n{fence}\n## Today\n- one line each\n{close}\n\n{{context}}\n"
    ev = evidence(prompt, task(), f"{fence}\n## Today\n- the bins go out on Tuesday\n{close}")
    assert ev.has("code_fences")
    after = fixed(ev, "unfence")
    assert not shapes.shows_fences(after) and "## Today" in after
    quiet(after, task(), "## Today\n- the bins go out on Tuesday", "code_fences")


@pytest.mark.parametrize("sentence", [
    "For each entry, use the Write tool to create Out/<slug>.md with the details.",
    "With the Write tool, create one file per entry under Out/.",
    "Call the `save_entry` tool once for each entry below.",
    "Using the create_file function, write Out/<slug>.md for every entry.",
    "Save every entry via the notes API, then stop.",
])
def test_a_tool_instruction_in_any_shape_gives_way_to_the_declared_blocks(sentence: str) -> None:
    prompt = f"You log the entries for {{date}}.\n\n{sentence}\n\n{{context}}\n"
    tc = task(blocks={"regex": BLOCKS, "min": 1})
    ev = evidence(prompt, tc, "I would save these entries with the tool, but here is a report instead.")
    assert ev.has("format_miss")
    after = fixed(ev, "blocks_not_tools")
    assert shapes.tool_calls(after) == [] and "=== ENTRY: <title> ===" in after
    quiet(after, tc, "=== ENTRY: Boiler service ===\nBooked for Tuesday.", "format_miss")


def test_a_fix_vetoed_because_its_answers_hit_num_predict_comes_back_with_room(tmp_path: Path) -> None:
    svc = seed_services(tmp_path)
    try:
        ev = diagnose("lesson-distiller", diagnose_deps(svc))
    finally:
        svc.close()
    first = {tuple(d.meta["rules"]) for d in rules.propose(ev)}
    assert ("add_postprocessor",) in first and not any("raise_num_predict" in r for r in first)
    vetoed = dataclasses.replace(ev, tried=({"proposer": "rules", "outcome": "discarded", "description": "blocks",
                                             "reason": "guardrail regressed: truncated (3 of 3 inputs pass → fail)"},))
    deltas = rules.propose(vetoed)
    post = next(d for d in deltas if d.meta["rules"] == ["add_postprocessor"])
    config = next(e.after for e in post.edits if e.in_config)
    block = yaml.safe_load(config or "")["tasks"]["lesson-distiller"]
    assert block["postprocess"] and block["options"]["num_predict"] == 1600  # 800 → 1600 with the blocks
    assert deltas[0].meta["rules"] == ["blocks_not_tools", "raise_num_predict"]  # composed, tried first


@pytest.mark.parametrize("requires,shows", [
    ({"min_words": 300}, ["Write at least 300 words"]),
    ({"min_facts": 6}, ["At least 6 bullets"]),
    ({"sections": ["## Weather", "## Activities"]}, ["## Weather\n", "## Activities\n", "packing reads this section"]),
    ({"min_facts": 5, "sections": ["## Key facts"]}, ["## Key facts\nAt least 5 bullets"]),
    ({"min_words": 120, "sections": ["Budget"]}, ["## Budget\n", "Write at least 120 words"]),
])
def test_a_producer_is_grown_for_what_its_consumer_requires(requires: dict[str, object], shows: list[str]) -> None:
    prompt = "Plan the trip for {date}.\n\n## Key facts\nThe facts.\n\n{context}\n"
    ev = evidence(prompt, task(), "## Key facts\n- one")
    short = SignatureNote("too_small_for_consumer", "medium", "prompt", "thin", "finding", {"consumer": "packing"})
    reader = Neighbour("packing", "downstream", ("Trips/plan.md",), requires, {}, {"words": {"min": 40}})
    ev = dataclasses.replace(ev, signatures=(short,), downstream=(reader,))
    delta = next(d for d in rules.propose(ev) if d.meta.get("rules") == ["grow_for_consumer"])
    after = next(e.after for e in delta.edits if e.path == PROMPT) or ""
    assert all(s in after for s in shows), after
    assert delta.tasks == ("t", "packing") and "None" not in delta.description
    assert after.rstrip().endswith("{context}")


def test_verification_judges_the_fact_bullets_a_consumer_requires(tmp_path: Path) -> None:
    from domain.config import VaultConfig
    from handlers.verify_delta import verification_contract

    tasks = {"news": {"prompt": "p.md", "model": "ollama:m", "outputs": ["News/*.md"],
                      "expect": {"blocks": {"regex": "^- .+", "min": 3}}},
             "letter": {"prompt": "p.md", "model": "ollama:m", "inputs": ["News/*.md"], "requires": {"min_facts": 6}},
             "plain": {"prompt": "p.md", "model": "ollama:m", "outputs": ["Plain/*.md"]},
             "reader": {"prompt": "p.md", "model": "ollama:m", "inputs": ["Plain/*.md"], "requires": {"min_facts": 4}}}
    config = VaultConfig.model_validate({"vault": ".", "tasks": tasks})
    news = verification_contract(config, "news").expect.blocks
    assert news is not None and (news.regex, news.min) == ("^- .+", 6)  # its own bullet clause, raised
    plain = verification_contract(config, "plain").expect.blocks
    assert plain is not None and plain.min == 4  # a bullet clause added
