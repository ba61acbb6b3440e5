"""Every prompt fixer on many shapes of its fault (most in no vault): afterwards the structural finder sees no
fault left, what the template asks for otherwise is still there, and `{context}` stays where it was."""

from __future__ import annotations

import re

import pytest

from domain import prompt_shapes as shapes
from handlers.proposers import prompt_fixes as fixes
from tests.test_prompt_shapes import CONDITIONALS, EXAMPLES, SLOTS

HEADER = r"^=== PRACTICE NOTE: (.+) ===$"


def _context_last(text: str) -> None:
    lines = text.rstrip("\n").split("\n")
    assert lines.count("{context}") == 1 and lines[-1] == "{context}"


# ---- examples --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_in_any_shape_becomes_a_description_of_its_shape(name: str) -> None:
    text, inside = EXAMPLES[name]
    fixed = fixes.structure_only_example(text)
    assert fixed is not None
    assert shapes.example_sections(fixed) == [] and inside not in fixed
    assert "Shape of the answer:" in fixed and fixes.DO_NOT_COPY in fixed
    assert shapes.slots(fixed) == [] and not shapes.shows_fences(fixed)  # no new fault in its place
    _context_last(fixed)


def test_the_description_keeps_the_answers_structure_and_the_instructions_after_it() -> None:
    fixed = fixes.structure_only_example(EXAMPLES["heading without colon"][0])
    assert fixed is not None and "## Rules\nKeep it short." in fixed and '"Mon:"' in fixed
    fixed = fixes.structure_only_example(EXAMPLES["bold label with heading body"][0])
    assert fixed is not None and "## Samples, ## Instruments" in fixed and "S-14" not in fixed
    fixed = fixes.structure_only_example(EXAMPLES["label"][0])
    assert fixed is not None and "today's date" in fixed and "Precision" not in fixed


def test_an_unlabelled_example_is_replaced_where_the_output_copied_it() -> None:
    text = "Write the plan like this one:\n\nMon: lentil soup with rye bread\nTue: beans on toast\n\n{context}\n"
    assert fixes.structure_only_example(text) is None  # nothing labels it: only the copied lines can say where
    fixed = fixes.structure_only_example(text, ["Mon: lentil soup with rye bread"])
    assert fixed is not None and "lentil" not in fixed and '"Mon:", "Tue:"' in fixed


def test_copied_instruction_lines_are_not_mistaken_for_an_example() -> None:
    text = "## Commits\nYesterday's commits as bullets: hash and message.\n\n{context}\n"
    assert fixes.structure_only_example(text, ["Yesterday's commits as bullets: hash and message."]) is None


# ---- fences ----------------------------------------------------------------------------------------------

FENCED = [
    "Use this layout:\n```markdown\n## New tools\n- one line each\n```\n\n{context}\n",
    "Use this layout:\n~~~\n## Payments\n- payee and amount\n~~~\n\n{context}\n",
    "Use this layout:\n````md\n## Samples\n````\n\n{context}\n",
    "Steps:\n- log the run\n  ```text\n  Run N: result\n  ```\n\n{context}\n",
    "> ```\n> ## Week\n> ```\n\n{context}\n",
    "Put the whole answer in a markdown code block.\n\n{context}\n",
    "Answer inside a ```markdown block, headings first.\n\n{context}\n",
    "<pre>\n## Lab day\n</pre>\n\n{context}\n",
]


@pytest.mark.parametrize("text", FENCED)
def test_fences_in_any_shape_are_removed_and_forbidden(text: str) -> None:
    fixed = fixes.remove_fences(text)
    assert fixed is not None and not shapes.shows_fences(fixed) and fixes.NO_FENCES in fixed
    kept = [ln.strip("> ").strip() for ln in text.split("\n") if "#" in ln and "`" not in ln and "pre>" not in ln]
    assert all(k in fixed for k in kept)  # what the fence wrapped stays
    _context_last(fixed)


# ---- slots -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line,expected", SLOTS)
def test_ambiguous_slots_in_any_shape_become_described_ones(line: str, expected: list[str]) -> None:
    text = f"Write the report.\n\n## Items\n{line}\n\n{{context}}\n"
    fixed = fixes.describe_slots(text)
    if all(s.startswith("<") for s in expected):
        assert fixed is None  # already described: nothing to do unless they leak too (in words, below)
        return
    assert fixed is not None and fixes.NO_PLACEHOLDERS in fixed
    left = shapes.slots(fixed)
    assert left and all(s.shape == "angle" for s in left)  # each slot now says what goes there
    assert len(left) == len(expected)
    _context_last(fixed)


@pytest.mark.parametrize("line,expected", SLOTS)
def test_slot_lines_in_any_shape_can_be_said_in_words(line: str, expected: list[str]) -> None:
    text = f"Write the report.\n\n## Items\n{line}\n\n{{context}}\n"
    fixed = fixes.describe_slots(text, in_words=True)
    assert fixed is not None and shapes.slots(fixed) == [] and fixes.NO_PLACEHOLDERS in fixed
    described = fixed.split("\n")[3]
    assert described.startswith("Write ") and all(s.strip("[]<>{}_ ").lower()[:4] in described.lower()
                                                  for s in expected if s.strip("_X/ "))
    _context_last(fixed)


def test_a_slot_line_keeps_its_literal_words_and_its_markup_in_words() -> None:
    line = fixes.describe_slot_line("- **[Tool]** ([Category]) — [One line on why it matters]",
                                    shapes.slots("- **[Tool]** ([Category]) — [One line on why it matters]"))
    assert line == ("Write one bullet per item: the tool in bold, the category in parentheses, then one line on "
                    "why it matters.")
    payee = "[Payee]: [Amount] due [Date]"
    assert fixes.describe_slot_line(payee, shapes.slots(payee)) == (
        'Write a line: the payee, the amount, "due", then the date.')


def test_only_the_leaked_slots_are_rewritten_and_block_headers_stay() -> None:
    text = "Notes:\n=== NOTE: <title> ===\n- [Source]: one line\n- [Topic]: one line\n\n{context}\n"
    fixed = fixes.describe_slots(text, only={"[Source]"}, keep=r"^=== NOTE: (.+) ===$")
    assert fixed is not None and "=== NOTE: <title> ===" in fixed and "- <source>: one line" in fixed
    assert "- [Topic]: one line" in fixed  # did not leak: left as it was
    assert fixes.describe_slots(text, only={"[Other]"}) is None
    words = fixes.describe_slots(text, only={"<title>", "[Source]"}, in_words=True, keep=r"^=== NOTE: (.+) ===$")
    assert words is not None and "=== NOTE: <title> ===" in words  # the header is the contract's format


# ---- conditional asides ----------------------------------------------------------------------------------


@pytest.mark.parametrize("line,alt,cond,negated", CONDITIONALS)
def test_conditional_asides_in_any_shape_become_their_own_sentence(line: str, alt: str, cond: str,
                                                                  negated: bool) -> None:
    text = f"## Section\n{line}\n\n{{context}}\n"
    fixed = fixes.plain_conditionals(text)
    assert fixed is not None and shapes.conditionals(fixed) == []
    lines = fixed.split("\n")
    if alt:
        assert alt in lines[2] and alt not in lines[1]  # the special case is stated on its own line
        assert lines[2].startswith(("If ", "Unless ", "When ")) and (not negated or lines[2].startswith("Unless"))
    else:  # no text to write instead: the aside's own words, as their own sentence
        aside = shapes.conditionals(text)[0].action
        assert lines[2] == aside[:1].upper() + aside[1:] + "." and "(" not in lines[1]
    assert lines[1].split()[0].strip(".;") == line.split()[0].strip(".;")  # the rest of the template line stays
    _context_last(fixed)


def test_a_conditional_without_quoted_text_keeps_its_own_words() -> None:
    fixed = fixes.plain_conditionals("## Orders\nOpen orders (leave the section out if there are none)\n{context}\n")
    assert fixed == "## Orders\nOpen orders\nLeave the section out if there are none.\n{context}\n"


# ---- tools -----------------------------------------------------------------------------------------------

TOOLS = [
    "For each lesson, use the Write tool to create Knowledge/practice--<slug>.md with the practice in one line.",
    "With the Write tool, create one note per lesson under Knowledge/.",
    "Call the save_note tool to save each lesson as a note.",
    "Using the create_file function, write Knowledge/practice--<slug>.md for every lesson.",
    "Invoke `write_file` for every lesson, then stop.",
    "Save each lesson via the notes API.",
    "For every lesson call save_entry(title, body) and move on.",
]


@pytest.mark.parametrize("sentence", TOOLS)
def test_tool_instructions_in_any_shape_become_the_declared_blocks(sentence: str) -> None:
    text = f"You distil lessons. Today is {{date}}.\n\n{sentence}\n\n{{context}}\n"
    fixed = fixes.blocks_instead_of_tool(text, HEADER)
    assert fixed is not None and shapes.tool_calls(fixed) == []
    assert "=== PRACTICE NOTE: <title> ===" in fixed and fixes.shows_format(fixed, HEADER)
    assert not re.search(r"Knowledge/\S+\.md", fixed)  # no file for the model to "create"
    assert "lesson" in fixed.split("\n")[2]
    _context_last(fixed)


@pytest.mark.parametrize("regex,header", [
    (r"^=== PRACTICE NOTE: (.+) ===$", ("=== PRACTICE NOTE: ", " ===")),
    (r"^##\s+Note:\s*(?P<title>.+?)\s*$", ("## Note: ", "")),
    (r"^--- ENTRY \((.+)\) ---$", ("--- ENTRY (", ") ---")),
    (r"^### Sample ([^#]+)$", ("### Sample ", "")),
    (r"^>> (\S.*)$", None),  # too little literal text to show as a header
    (r"^(?:A|B): (.+)$", None),  # an alternation is not a single header line
])
def test_block_headers_are_read_from_the_contract_regex(regex: str, header: tuple[str, str] | None) -> None:
    assert fixes.block_header(regex) == header
