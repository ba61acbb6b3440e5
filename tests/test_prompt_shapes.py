"""Prompt parts found by structure, whatever the wording: many shapes of each, most of them in no vault, and the
look-alikes that are not the part (links, HTML, citations, instructions that merely mention an example)."""

from __future__ import annotations

import pytest

from domain import prompt_shapes as shapes
from domain.checks import find_instruction_leaks, find_prompt_slots

# ---- example sections ------------------------------------------------------------------------------------

EXAMPLES = {
    "label": ("Write a reflection.\n\nExample:\n2026-03-10: Precision over scope\nShipped 3 commits.\n\n{context}\n",
              "2026-03-10: Precision over scope"),
    "heading without colon": ("Plan the week.\n\n### Example week\nMon: lentil soup\nTue: rye bread and beans\n\n"
                              "## Rules\nKeep it short.\n\n{context}\n", "Mon: lentil soup"),
    "sample output": ("Summarise the ledger.\n\nSample output\n- Rent: 950.00 EUR paid 2026-02-01\n"
                      "- Power: 61.20 EUR due 2026-02-14\n\n{context}\n", "- Rent: 950.00 EUR"),
    "here is an example": ("Log the experiment.\n\nHere is an example of a good entry:\nRun 14 — buffer pH 7.2, "
                           "yield 83%, no precipitate.\n\n{context}\n", "Run 14 — buffer pH 7.2"),
    "fenced": ("Write the digest.\n\nExample output:\n```\n## Today\n- Rent is due on Friday\n```\n\n{context}\n",
               "- Rent is due on Friday"),
    "xml tag": ("Draft the note.\n<example>\nDear Ms Park, the boiler was serviced on 3 May.\n\nRegards\n</example>\n"
                "\n{context}\n", "Dear Ms Park"),
    "inline after label": ("One line per day.\nExample: 2026-04-02 — repotted the basil, watered twice.\n\n{context}\n",
                           "repotted the basil"),
    "looks like this": ("Write the weekly plan.\nA good week looks like this:\nMon: lentil soup (Ana cooks)\n"
                        "Tue: pasta bake (Ben cooks)\n\n{context}\n", "lentil soup"),
    "for instance": ("Log the reading.\nFor instance —\n> 2026-04-12 · Tomatoes: 4 L each. Watch: frost.\n\n{context}\n",
                     "Tomatoes: 4 L"),
    "bold label with heading body": ("Brief the lab.\n\n**Sample briefing:**\n## Samples\n- S-14 thawed 09:10\n\n"
                                     "## Instruments\n- PCR block 2 booked\n\n{context}\n", "PCR block 2 booked"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_sections_are_found_in_every_shape(name: str) -> None:
    text, inside = EXAMPLES[name]
    found = shapes.example_sections(text)
    assert found, name
    body = "\n".join(found[0].lines(text))
    assert inside in body and "{context}" not in body


def test_an_example_section_stops_before_the_instructions_that_follow_it() -> None:
    text, _ = EXAMPLES["heading without colon"]
    section = shapes.example_sections(text)[0]
    assert "## Rules" not in "\n".join(section.lines(text)) and "Keep it short." not in "\n".join(section.lines(text))


@pytest.mark.parametrize("text", [
    "For example, write the payee's name in full.\n{context}\n",  # an instruction that mentions an example
    "Give each example its own bullet.\n{context}\n",
    "## Samples\nList the samples thawed today.\n{context}\n",  # a section about lab samples, not an example
    "Write the notes.\n\n{context}\n",
])
def test_instructions_that_mention_examples_are_not_example_sections(text: str) -> None:
    assert shapes.example_sections(text) == []


def test_an_unlabelled_example_is_located_by_the_lines_the_output_copied() -> None:
    text = "Write the plan like this one:\n\nMon: lentil soup with rye bread\nTue: beans on toast\n\n{context}\n"
    assert shapes.example_sections(text) == []
    assert shapes.example_span_of(text, ["Mon: lentil soup with rye bread"]) == (2, 3)


# ---- slots -----------------------------------------------------------------------------------------------

SLOTS = [
    ("- **[Tool]** ([Category]) — [One line on why it matters]", ["[Tool]", "[Category]",
                                                                  "[One line on why it matters]"]),
    ("[Payee]: [Amount] due [Date]", ["[Payee]", "[Amount]", "[Date]"]),
    ("Dear <name>, your sample <sample id> is ready.", ["<name>", "<sample id>"]),
    ("Total spent: {total} of {budget}", ["{total}", "{budget}"]),
    ("Hello {{ person }}", ["{{ person }}"]),
    ("Vendor: ___  Amount: ___", ["___", "___"]),
    ("Balance on XX/XX: XXX EUR", ["XX/XX", "XXX"]),
    ("Signed: [insert your name]", ["[insert your name]"]),
]


@pytest.mark.parametrize("line,expected", SLOTS)
def test_slots_are_found_in_every_shape(line: str, expected: list[str]) -> None:
    assert [s.text for s in shapes.slots(line)] == expected


@pytest.mark.parametrize("line", [
    "See [the docs](https://example.org) and [RFC 9110][1].",
    "[1]: https://example.org/ref",
    "Link notes as [[Weekly review]] and mark callouts [!NOTE].",
    "- [x] done  - [ ] open, as in [Smith 2020] and [3].",
    "Line breaks as <br>, links as <https://example.org>, mail <me@example.org>, comments <!-- x -->.",
    "Today is {date}.",
    "Use shell ${HOME} and LaTeX \\frac{a}{b}.",
])
def test_look_alikes_of_slots_are_not_slots(line: str) -> None:
    assert shapes.slots(line) == []


def test_an_output_repeating_any_slot_shape_of_its_prompt_is_a_leak() -> None:
    prompt = "Dear <name>,\nVendor: ___\n[Payee]: paid\n{context}\n"
    output = "Dear <name>,\nVendor: ___\nOlive Grove Co-op: paid"
    assert find_prompt_slots(output, prompt) == ["<name>", "___"]
    assert find_prompt_slots("Dear Ms Park,\nVendor: Olive Grove", prompt) == []


# ---- fences ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,lines", [
    ("Use:\n```markdown\n## Today\n```\n", [1, 3]),
    ("Use:\n~~~\nplain\n~~~\n", [1, 3]),
    ("Use:\n````md\nx\n````\n", [1, 3]),
    ("- item\n  ```\n  code\n  ```\n", [1, 3]),
    ("> quoted\n> ```text\n> x\n> ```\n", [1, 3]),
    ("<pre>\nx\n</pre>\n", [0, 2]),
])
def test_fence_lines_are_found_in_every_shape(text: str, lines: list[int]) -> None:
    assert shapes.fence_lines(text) == lines


@pytest.mark.parametrize("sentence", [
    "Put the list in a markdown code block.",
    "Wrap the answer in triple backticks.",
    "Answer inside a ```markdown block.",
    "Return it as a fenced block.",
    "Format the table within a code fence.",
])
def test_requests_for_a_code_block_in_words_are_fences_shown(sentence: str) -> None:
    assert shapes.fence_requests(sentence) and shapes.shows_fences(sentence)


def test_prose_about_code_is_not_a_fence() -> None:
    assert not shapes.shows_fences("Name the commit and the code change it made.\n{context}\n")


# ---- conditional asides ----------------------------------------------------------------------------------

CONDITIONALS = [
    ("Commits as bullets (or 'quiet — no commits' if 0).", "quiet — no commits", "0", False),
    ("Payments due this week (or \"nothing due\" unless a bill arrived).", "nothing due", "a bill arrived", True),
    ("Samples thawed — if none, write 'no thaws today'", "no thaws today", "none", False),
    ("Open orders (write 'n/a' when the ledger is empty)", "n/a", "the ledger is empty", False),
    ("Deliveries; otherwise write “no deliveries”.", "no deliveries", "", False),
    ("Incidents [or 'all calm' if nothing happened]", "all calm", "nothing happened", False),
    ("Reagents low (if none: 'stock fine')", "stock fine", "none", False),
    ("One line on the newest paper (if any).", "", "any", False),
    ("Chores for the day (3 bullets, or none if it is a holiday)", "", "it is a holiday", False),
    ("Bins out at 7 (except on bank holidays)", "", "", False),
]


@pytest.mark.parametrize("line,alt,cond,negated", CONDITIONALS)
def test_conditional_asides_are_found_in_every_shape(line: str, alt: str, cond: str, negated: bool) -> None:
    found = shapes.conditionals(line)
    assert len(found) == 1, line
    assert (found[0].alternative, found[0].condition, found[0].negated) == (alt, cond, negated)


@pytest.mark.parametrize("line", [
    "If there are no commits, write one line saying so.",  # a whole instruction sentence is not an aside
    "The pump (model P-200) runs if the tank is full.",
    "Spend (in EUR) per category.",
])
def test_sentences_and_plain_parentheses_are_not_conditional_asides(line: str) -> None:
    assert shapes.conditionals(line) == []


@pytest.mark.parametrize("line,alt,cond,negated", CONDITIONALS)
def test_an_output_repeating_a_conditional_aside_is_an_instruction_leak(line: str, alt: str, cond: str,
                                                                       negated: bool) -> None:
    aside = shapes.conditionals(line)[0]
    output = "## Today\n" + line + "\n- something real"
    assert find_instruction_leaks(output, line), aside.text
    assert find_instruction_leaks("## Today\n- something real", line) == []


# ---- tool instructions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence,phrase", [
    ("For each lesson, use the Write tool to create Knowledge/practice--<slug>.md.", "use the Write tool to "),
    ("With the Write tool, create one file per lesson.", "With the Write tool, "),
    ("Call the save_note tool to save each entry.", "Call the save_note tool to "),
    ("Using the create_file function, write Ledger/<month>.md.", "Using the create_file function, "),
    ("Invoke `write_file` for every sample sheet.", "Invoke `write_file` "),
    ("Save each summary via the notes API.", "via the notes API"),
    ("call save_entry(title, body) and stop.", "call save_entry(title, body) and "),
])
def test_tool_instructions_are_found_in_every_shape(sentence: str, phrase: str) -> None:
    calls = shapes.tool_calls(sentence)
    assert calls and calls[0].text.strip() == phrase.strip(), (sentence, calls)


@pytest.mark.parametrize("sentence", [
    "Name the tool that helped most.",
    "List new tools worth trying, with their category.",
    "Explain the function of each reagent.",
    "Use short sentences.",
])
def test_sentences_about_tools_are_not_tool_instructions(sentence: str) -> None:
    assert shapes.tool_calls(sentence) == []
