"""Prompt rendering is pure: known placeholders filled once, unknown ones left for the judge to see."""

from __future__ import annotations

import datetime as dt

from domain.render import expand_output, is_literal, render_prompt


def test_fills_context_date_and_named_inputs() -> None:
    out = render_prompt("{date}: {context} | {input:brief} | {brief}", "ctx", dt.date(2026, 3, 18), {"brief": "B"})
    assert out == "2026-03-18: ctx | B | B"


def test_unknown_placeholders_and_json_braces_are_left_untouched() -> None:
    template = 'Say {tone} things. Example: {"a": 1} and [Tool] {input:missing}'
    assert render_prompt(template, "c", "2026-03-18", {}) == template


def test_substituted_text_is_not_rescanned() -> None:
    out = render_prompt("{context} / {date}", "collector printed {date} and {input:x}", "2026-03-18", {"x": "X"})
    assert out == "collector printed {date} and {input:x} / 2026-03-18"


def test_append_missing_puts_declared_data_after_a_template_that_forgot_it() -> None:
    out = render_prompt("Write the brief.\n", "the context", "d", {"inputs": "--- a.md ---\nA\n"}, append_missing=True)
    assert out == "Write the brief.\n\nthe context\n\n--- a.md ---\nA\n"
    assert render_prompt("{context}", "c", "d", {"inputs": "I"}, append_missing=False) == "c"


def test_expand_output() -> None:
    assert expand_output("Briefings/{date}.md", dt.date(2026, 3, 18), "mb") == "Briefings/2026-03-18.md"
    assert expand_output("out/{task}-{date}.md", "2026-03-18", "mb") == "out/mb-2026-03-18.md"
    assert is_literal("Briefings/2026-03-18.md") and not is_literal("Knowledge/practice--*.md")


def test_inputs_are_not_appended_when_the_task_collects_them_itself() -> None:
    inputs = {"inputs": "--- Knowledge/a.md ---\nbig note"}
    assert "big note" in render_prompt("Summarise.", "ctx", "2026-03-18", inputs, append_missing=True)
    out = render_prompt("Summarise.", "ctx", "2026-03-18", inputs, append_missing=True, append_inputs=False)
    assert "big note" not in out and out.endswith("ctx")
