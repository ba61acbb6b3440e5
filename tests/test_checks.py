"""Contract and universal checks: each fires on a crafted output and stays quiet on a normal one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from domain.checks import (
    contract_checks,
    find_copied_lines,
    find_fences,
    find_instruction_leaks,
    find_placeholders,
    find_prompt_slots,
    missing_sections,
    near_identical,
    universal_checks,
)
from domain.config import Expect
from domain.runs import Check, RunResult


def make_run(output: str = "A plain paragraph about the day's commits.", **kw: Any) -> RunResult:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "task": "morning-briefing",
        "started": "2026-03-18T06:30:00Z",
        "status": "ok",
        "model": "ollama:qwen3:8b",
        "options": {},
        "output": output,
        "done_reason": "stop",
        "prompt_tokens": 500,
        "output_tokens": 120,
    }
    fields.update(kw)
    return RunResult(**fields)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def one(output: str, expect: Expect, previous: list[str] | None = None) -> Check:
    checks = contract_checks(output, expect, previous or [])
    assert len(checks) == 1
    return checks[0]


# ---- contract ----------------------------------------------------------------------------------


def test_undeclared_clauses_produce_no_checks() -> None:
    assert contract_checks("anything", Expect(), ["anything"]) == []


def test_min_words_counts_and_reports() -> None:
    fail = one("one two three", Expect(min_words=5))
    assert (fail.name, fail.passed, fail.hard) == ("min_words", False, True)
    assert "3 words" in fail.detail and "min 5" in fail.detail
    assert one("one two three four five", Expect(min_words=5)).passed


def test_max_words() -> None:
    assert not one("a b c d", Expect(max_words=3)).passed
    assert one("a b c", Expect(max_words=3)).passed


def test_sections_need_markdown_headings_at_the_declared_level() -> None:
    expect = Expect(sections=["## Commits", "## Goals"])
    good = "# Briefing\n## Commits (3)\n- a\n## Goals\n- b\n"
    assert one(good, expect).passed
    missing = one("## Commits\n- a\nGoals: none\n", expect)
    assert not missing.passed and "## Goals" in missing.detail and "## Commits" not in missing.detail.split("(")[0]
    assert not one("## Commits\n### Goals\n", expect).passed  # wrong level
    assert not one("Commits and Goals are discussed in prose.", expect).passed


def test_section_without_hashes_matches_any_level_but_not_a_longer_word() -> None:
    assert missing_sections("### Goals: today\n", ["Goals"]) == []
    assert missing_sections("## Goalkeeping\n", ["Goals"]) == ["Goals"]


def test_blocks_count_within_bounds_multiline() -> None:
    expect = Expect(blocks={"regex": r"^=== NOTE: (.+) ===$", "min": 1, "max": 2})
    narrative = "I reviewed the lessons. === NOTE: inline === is not a block header here."
    zero = one(narrative, expect)
    assert not zero.passed and "0 blocks" in zero.detail
    two = one("=== NOTE: a ===\nbody\n=== NOTE: b ===\nbody\n", expect)
    assert two.passed and "2 blocks" in two.detail and "=== NOTE: a ===" in two.detail
    assert not one("=== NOTE: a ===\n=== NOTE: b ===\n=== NOTE: c ===\n", expect).passed


def test_forbid_reports_the_matching_line() -> None:
    expect = Expect(forbid=[r"\(or '", r"TODO"])
    bad = one("## Commits\nCommits: 0 (or 'quiet — no commits' if 0)\n", expect)
    assert not bad.passed and "quiet — no commits" in bad.detail and "TODO" not in bad.detail
    assert one("## Commits\nThree commits landed (or so the log says).\n", expect).passed


def test_distinct_from_previous_exact_whitespace_and_near_identical() -> None:
    expect = Expect(distinct_from_previous=2)
    text = "Today I focused on precision over scope and closed three issues in the planner module."
    assert not one(text, expect, [text]).passed
    assert not one(text, expect, ["  " + text.replace(" ", "\n  ")]).passed
    near = text.replace("three", "four")
    assert near_identical(text, near)
    check = one(near, expect, [text])
    assert not check.passed and "similar" in check.detail
    assert one("A different day: the seeder wrote eleven notes on attention.", expect, [text]).passed


def test_distinct_compares_only_the_last_n() -> None:
    text = "The same reflection as three days ago, word for word, nothing new at all."
    older = [text, "other output one entirely", "other output two entirely"]
    assert one(text, Expect(distinct_from_previous=2), older).passed
    assert not one(text, Expect(distinct_from_previous=3), older).passed
    assert one(text, Expect(distinct_from_previous=2), []).passed


def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"goals": {"type": "array"}}, "required": ["goals"]}
    expect = Expect(json_schema=schema)
    assert one('{"goals": []}', expect).passed
    wrong = one('{"goals": "none"}', expect)
    assert not wrong.passed and "goals" in wrong.detail
    assert "not JSON" in one("Here are the goals: none", expect).detail


def test_bad_regex_or_schema_is_a_config_error_not_a_failed_check() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        Expect(forbid=["(or '"])
    with pytest.raises(ValidationError, match=r"blocks\.regex"):
        Expect(blocks={"regex": "[unclosed"})
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        Expect(json_schema={"type": "nonsense"})


# ---- universal ---------------------------------------------------------------------------------

UNIVERSAL = {"failed", "empty", "truncated", "context_overflow", "thinking_burn", "placeholder_leak", "code_fences"}


def test_a_clean_run_passes_every_universal_check() -> None:
    checks = universal_checks(make_run(options={"num_ctx": 8192, "num_predict": 600}, thinking_tokens=10))
    assert {c.name for c in checks} == UNIVERSAL
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert [c.name for c in checks if not c.hard] == ["thinking_burn"]


@pytest.mark.parametrize("reason", ["length", "max_tokens", "LENGTH"])
def test_truncated_by_done_reason(reason: str) -> None:
    check = by_name(universal_checks(make_run("ends mid-sent", done_reason=reason, output_tokens=300)))["truncated"]
    assert not check.passed and check.hard and "300 tokens" in check.detail and "mid-sent" in check.detail


def test_context_overflow_from_tokens_options_or_reason() -> None:
    assert not by_name(universal_checks(make_run(prompt_tokens=8192, num_ctx=8192)))["context_overflow"].passed
    assert not by_name(universal_checks(make_run(prompt_tokens=4096, options={"num_ctx": 4096})))[
        "context_overflow"
    ].passed
    assert not by_name(universal_checks(make_run(done_reason="context_length_exceeded")))["context_overflow"].passed
    assert by_name(universal_checks(make_run(prompt_tokens=8000, num_ctx=8192)))["context_overflow"].passed


def test_thinking_burn_is_soft_and_needs_half_the_budget() -> None:
    burned = by_name(universal_checks(make_run(thinking_tokens=150, num_predict=300)))["thinking_burn"]
    assert not burned.passed and not burned.hard
    assert by_name(universal_checks(make_run(thinking_tokens=149, num_predict=300)))["thinking_burn"].passed
    assert by_name(universal_checks(make_run(thinking_tokens=5000)))["thinking_burn"].passed  # budget unknown


def test_empty_and_failed() -> None:
    checks = by_name(universal_checks(make_run("  \n ", status="failed", error="collector exited 2: no such file")))
    assert not checks["empty"].passed and not checks["failed"].passed
    assert "collector exited 2" in checks["failed"].detail


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("## Tools\n- [Tool]: a tool that does [Description]", "[Tool]"),
        ("Written by [Your Name] on {date}.", "{date}"),
        ("Written by [Your Name] today.", "[Your Name]"),
        ("Meeting on [insert date here].", "[insert date here]"),
        ("Hello {{ name }}, welcome.", "{{ name }}"),
        ("Deadline: [DATE]", "[DATE]"),
    ],
)
def test_placeholder_leaks_fire(text: str, slot: str) -> None:
    assert slot in find_placeholders(text)
    check = by_name(universal_checks(make_run(text)))["placeholder_leak"]
    assert not check.passed and slot in check.detail


@pytest.mark.parametrize(
    "text",
    [
        "See [the release notes](https://example.com/notes) and [Ollama][1].\n\n[1]: https://ollama.com",
        "Linked from [[Knowledge Note]] and [[Attention]].",
        "- [x] shipped the spacer fix\n- [ ] retrain deepener\n- [X] done",
        "As shown in prior work [1] and [Smith 2020], results vary.[^2]",
        "> [!NOTE]\n> Callouts are fine.",
        "The quote said it was 'their [sic] problem' and a[i] indexes the array.",
        "The loss is $\\frac{a}{b}$ with x^{n} terms and ${HOME} in shell.",
        'The JSON looked like {"score": 4} and an empty object {}.',
        "Use `{date}` in the template, never in the output.",
        "```python\nprint(f'{name}')\n```",
        "A normal sentence (with a parenthesis) and no brackets at all.",
    ],
)
def test_placeholder_false_positive_guards(text: str) -> None:
    assert find_placeholders(text) == []


def test_slots_inside_a_markdown_fence_are_prose_but_code_is_not() -> None:
    wrapped = "```markdown\n## Radar\n- [Tool]: what it does\n```"
    assert find_placeholders(wrapped) == ["[Tool]"]
    assert find_placeholders("```\n- [Tool]: x\n```") == ["[Tool]"]
    assert find_placeholders("```\nfor x in {items}: pass\n```", prose=False) == []
    assert find_placeholders("```python\nprint(f'{name}')\n```\nThen [Name] wrote:") == ["[Name]"]
    check = by_name(universal_checks(make_run("```\nrender({name})\n```"), prose=False))["placeholder_leak"]
    assert check.passed


def test_code_fences_only_fail_where_prose_is_expected() -> None:
    fenced = "```markdown\n## Radar\n- Tool one\n```"
    check = by_name(universal_checks(make_run(fenced)))["code_fences"]
    assert not check.passed and "line 1" in check.detail and "```markdown" in check.detail
    assert by_name(universal_checks(make_run(fenced), prose=False))["code_fences"].passed
    mention = "Wrap code in ``` fences, the model said, but this sentence has none at line start."
    assert by_name(universal_checks(make_run(mention)))["code_fences"].passed
    assert [n for n, _ in find_fences("a\n   ~~~\nb\n~~~")] == [2, 4]


def test_copied_lines_ignore_headings_short_lines_and_collected_data() -> None:
    prompt = 'Example:\n## Reflection\n- "2026-03-10: Precision over scope"\nKeep it short.\n'
    out = "## Reflection\n- 2026-03-10: Precision over scope\nKeep it short.\n- fix: planner retries on timeout"
    assert find_copied_lines(out, prompt) == ["- 2026-03-10: Precision over scope"]
    context = "commits:\nfix: planner retries on timeout\n2026-03-10: Precision over scope\n"
    assert find_copied_lines(out, prompt, context) == []


def test_instruction_leaks_conditional_and_from_prompt() -> None:
    assert find_instruction_leaks("Commits: 3 (or 'quiet — no commits' if 0)") == ["(or 'quiet — no commits' if 0)"]
    assert find_instruction_leaks("Blockers (if none) were discussed.") == ["(if none)"]
    prompt = "List the goals (max 3 bullets) for today."
    assert find_instruction_leaks("## Goals (max 3 bullets)\n- ship", prompt) == ["(max 3 bullets)"]
    prose = "It went well (or so it seemed), better (if you ask me) than the seeder (e.g. yesterday's run)."
    assert find_instruction_leaks(prose, prompt) == []


def test_prompt_slots_are_spans_the_template_itself_contains() -> None:
    prompt = "- **[Tool]** ([Category]) — [One line on why it matters]\nToday is {date}."
    out = "- **Ollama** (runtime) — [One line on why it matters]\nToday is {date}. See [Smith 2020]."
    assert find_prompt_slots(out, prompt) == ["[One line on why it matters]", "{date}"]
    assert find_prompt_slots(out, "") == []
    assert find_prompt_slots("```python\nx = {date}\n```", prompt, prose=False) == []


@pytest.mark.parametrize(("prompt", "out"), [
    ("One row per category:\n\n| Category | Budget | Spent | Left |\n|---|---|---|---|\n| <category> | <b> | <s> | <l> |\n",
     "| Category | Budget | Spent | Left |\n|---|---|---|---|\n| Food | 400 | 380 | 20 |\n"),
    ("Table:\n| Appliance name | Bought on | Warranty ends |\n| :--- | :---: | ---: |\n",
     "| Appliance name | Bought on | Warranty ends |\n| :--- | :---: | ---: |\n| Fridge | 2024-01-02 | 2027-01-02 |\n"),
    ("Columns: Plant name | Watered on | Next watering due\n---|---|---\n",
     "Plant name | Watered on | Next watering due\n---|---|---\nFern | Mon | Thu\n"),
])
def test_a_tables_header_row_is_its_format_not_a_copied_example(prompt: str, out: str) -> None:
    assert find_copied_lines(out, prompt) == []


def test_an_example_tables_data_rows_are_still_copies() -> None:
    prompt = "Example:\n| Item | Qty |\n|---|---|\n| Eggs from the corner shop on Monday | 12 |\n"
    out = "| Item | Qty |\n|---|---|\n| Eggs from the corner shop on Monday | 12 |\n"
    assert find_copied_lines(out, prompt, "milk, bread") == ["| Eggs from the corner shop on Monday | 12 |"]
