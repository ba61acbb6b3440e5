"""The flawed-model double as a behaviour spec, driven through the real Ollama backend on the loopback server.

Each flaw is shown in several shapes, and each test pairs what *does* cure it (the prompt's structure changing)
with what does not (a rule written in words).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from adapters.backends.ollama_backend import OllamaBackend
from benchmarks.fault_models import FaultServer
from domain.runs import Completion
from testbed.doubles.flawed_models import FlawedModels, traits_of
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.responder_backend import ResponderBackend

DATA = """=== Finance/statements (due 2026-05-12 to 2026-06-02) ===
payee | amount | due date | account
Childminder Lee | 210.00 | 2026-05-14 | CM-02
FibreNet Broadband | 29.99 | 2026-05-15 | FN-31337
Northern Water | 42.10 | 2026-05-20 | 4471-22
Council Tax | 164.00 | 2026-06-01 | CT-5510
"""
NOTES = """=== Knowledge/a.md ===
## Key Points
- Ease starts at 2.5 and never drops below 1.3.
- A failed recall resets the interval to one day.
## Key Sources
- https://example.org/sm2 — the original paper
=== Knowledge/b.md ===
## Key Points
- Paired comparisons remove the day-to-day spread.
- A bootstrap interval needs thousands of resamples.
## Key Sources
- https://example.org/bootstrap — lecture notes
"""
RULES = ("CRITICAL: DO NOT COPY the example.", "Never copy the sample; write about today.",
         "Do NOT output code fences.", "Answer in plain text, without any fences or backticks.",
         "Replace every placeholder with a real value.", "Never output literal template placeholders.")


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaServer]:
    with OllamaServer(FlawedModels(seed=1)) as s:
        yield s


def ask(server: OllamaServer, model: str, prompt: str, **options: object) -> Completion:
    return OllamaBackend(server.url, 10).complete(model, prompt, dict(options))


def text(server: OllamaServer, prompt: str, model: str = "gemma3:12b") -> str:
    return ask(server, model, prompt).text


# ---- copying a concrete example -----------------------------------------------------------------------------

EXAMPLES = {
    "label": "Write today's reflection.\n\nExample:\n2026-03-10: Precision over scope\nShipped 3 commits with Ana.\n",
    "heading without colon": "Share out the chores.\n\n### Example week\nMon: laundry (Ana), bins out (Ben)\n"
                             "Tue: dishwasher (Chloe), recycling (Ana)\n",
    "dash label, blockquote": "Write today's garden entry.\n\nSample entry —\n> 2026-04-12 · Tomatoes: watered 4 L each.\n",
    "for instance": "Write the note.\n\nFor instance:\nThe boiler read 1.2 bar on Monday, so Ben topped it up.\n",
}


@pytest.mark.parametrize("shape", sorted(EXAMPLES))
def test_a_concrete_example_is_copied_whatever_the_rule_says(server: OllamaServer, shape: str) -> None:
    prompt = EXAMPLES[shape]
    body = [ln for ln in prompt.split("\n\n", 1)[1].splitlines()[1:] if ln.strip()]
    for rule in ("", *RULES[:2]):
        answer = text(server, f"{prompt}\n{rule}\n\n{DATA}")
        assert all(line in answer for line in body), (shape, rule, answer)


def test_an_example_holding_only_slots_is_followed_not_copied(server: OllamaServer) -> None:
    shape = "Share out the chores.\n\n### Example week\nMon: <chore> (<person>)\nTue: <chore> (<person>)\n\n"
    answer = text(server, shape + DATA)
    assert re.search(r"^Mon: .+$", answer, re.M) and re.search(r"^Tue: .+$", answer, re.M)
    assert "<chore>" not in answer and "<person>" not in answer
    gone = text(server, "Share out the chores for the week, one line per day.\n\n" + DATA)
    assert "Mon:" not in gone  # no example, no copy


def test_quoted_line_labels_are_lines_of_the_answer(server: OllamaServer) -> None:
    prompt = 'Share out the chores. Start the lines with "Mon:", "Tue:" and "Wed:".\n\n' + DATA
    answer = text(server, prompt)
    assert [ln.split(":")[0] for ln in answer.splitlines()] == ["Mon", "Tue", "Wed"]


# ---- fences, slots, conditions, tools -----------------------------------------------------------------------


@pytest.mark.parametrize("fence", ["```markdown", "```", "~~~"])
def test_fences_shown_come_back_and_only_removing_them_cures_it(server: OllamaServer, fence: str) -> None:
    close = fence[:3]
    shown = f"Suggest outings for the weekend.\n\n{fence}\n## Saturday\n- <idea>\n{close}\n\n"
    for rule in ("", *RULES[2:4]):
        assert text(server, shown + rule + "\n\n" + DATA).startswith(fence), rule
    plain = text(server, "Suggest outings for the weekend.\n\n## Saturday\n- <idea>\n\n" + DATA)
    assert "```" not in plain and "~~~" not in plain and "## Saturday" in plain


@pytest.mark.parametrize("slot_line", ["- [Payee]: [Amount] due [Due date]", "- {payee}: {amount} due {due}",
                                       "- {{ payee }}: {{ amount }}", "- [Payee] — [Amount]"])
def test_bare_field_slots_come_back_literally_whatever_the_rule_says(server: OllamaServer, slot_line: str) -> None:
    for rule in ("", *RULES[4:]):
        answer = text(server, f"List the bills, one line per bill:\n{slot_line}\n\n{rule}\n\n{DATA}")
        assert slot_line in answer, rule


@pytest.mark.parametrize("slot_line", ["- <payee>: <amount> due <due date>",
                                       "- [the payee's name]: [the amount due] due [the due date]"])
def test_described_slots_are_filled_from_the_data(server: OllamaServer, slot_line: str) -> None:
    answer = text(server, f"List the bills, one line per bill:\n{slot_line}\n\n{DATA}")
    assert "- Childminder Lee: 210.00 due 2026-05-14" in answer and "Council Tax" in answer
    assert "<" not in answer and "[" not in answer


@pytest.mark.parametrize("condition", ["(or 'quiet — no commits' if 0)", '(write "all clear" unless one is due)',
                                       "(leave it out when nothing is due)", "(otherwise say none)"])
def test_a_conditional_parenthetical_is_echoed_until_it_is_its_own_sentence(server: OllamaServer,
                                                                            condition: str) -> None:
    prompt = f"Write the digest.\n\n## Due soon\nWhat is due, one line each {condition}.\n\n## Later\nThe rest.\n\n"
    assert condition in text(server, prompt + DATA)
    plain = prompt.replace(f" {condition}", "") + "If nothing is due, say so in one line.\n\n"
    answer = text(server, plain + DATA)
    assert "(" not in answer and "## Due soon" in answer


@pytest.mark.parametrize("ask_tool", ["For each bill, use the Write tool to create Bills/<payee>.md.",
                                      "With the Write tool, create Bills/<payee>.md for each bill.",
                                      "Call the `save_note` tool once for each bill."])
def test_a_tool_it_cannot_call_turns_the_answer_into_a_report(server: OllamaServer, ask_tool: str) -> None:
    block = "Output each bill as a block: a line === BILL: <payee> === then one line on it."
    told = text(server, f"{ask_tool}\n{block}\n\n{DATA}")
    assert "=== BILL:" not in told and "tool" in told
    fixed = text(server, f"For each bill below, write one note.\n{block} Do not call any tool.\n\n{DATA}")
    assert fixed.count("=== BILL: ") == 4 and "=== BILL: Childminder Lee ===" in fixed


# ---- sizes, items, data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ask_words", "low", "high"), [
    ("in about 120 words", 110, 140), ("at least 300 words", 300, 380), ("300+ words", 300, 380),
    ("under 100 words", 60, 100), ("no fewer than 250 words", 250, 320), ("between 200-300 words", 230, 270)])
def test_the_length_asked_is_roughly_met(server: OllamaServer, ask_words: str, low: int, high: int) -> None:
    n = len(text(server, f"Write the family newsletter {ask_words}, in plain paragraphs.\n\n{DATA}").split())
    assert low <= n <= high, n


@pytest.mark.parametrize(("ask_count", "n"), [("", 3), ("At least 6 bullets, each one fact.", 6),
                                               ("List six facts.", 6), ("Give 5-7 items.", 5),
                                               ("No fewer than eight facts, please.", 8)])
def test_the_number_of_items_asked_is_written(server: OllamaServer, ask_count: str, n: int) -> None:
    answer = text(server, f"Collect the news as bullets:\n- <news item>\n\n{ask_count}\n\n{NOTES}")
    assert len(re.findall(r"^- ", answer, re.M)) == n


def test_items_go_round_every_section_the_data_carries(server: OllamaServer) -> None:
    quiz = "Write exactly four questions on the notes below:\nQ1: <question>\nA1: <answer>\n\n"
    leaked = text(server, quiz + NOTES)
    assert "https://" in leaked and leaked.count("\nQ") == 3
    clean = NOTES.replace("## Key Sources\n- https://example.org/sm2 — the original paper\n", "").replace(
        "## Key Sources\n- https://example.org/bootstrap — lecture notes\n", "")
    assert "https://" not in text(server, quiz + clean)


def test_recurring_values_are_counted_only_when_the_data_shows_them(server: OllamaServer) -> None:
    template = "List what we buy again and again:\n- <item> — bought <n> times\n\n"
    rows = ["date,store,item,qty,price"] + [f"2026-05-{d:02d},Lidl,{item},1,1.00"
                                           for d, item in enumerate(["eggs", "bread", "eggs", "milk", "bread", "eggs"], 1)]
    fed = text(server, template + "\n".join(rows))
    assert "- eggs — bought 3 times" in fed and "- bread — bought 2 times" in fed and "milk" not in fed
    starved = text(server, template + "\n".join([rows[0], *rows[-3:]]))
    assert "bought" not in starved and "repeats" in starved


def test_one_item_per_record_names_the_groups(server: OllamaServer) -> None:
    judge = "For each task give one line:\n\n<task>: <score 1-5> — <main reason>\n\n"
    data = "".join(f"=== TASK: {t} ===\n- output of {t}\n\n" for t in ("meal-plan", "bills-digest", "chore-rota"))
    answer = text(server, judge + data)
    assert [ln.split(":")[0] for ln in answer.splitlines()] == ["meal-plan", "bills-digest", "chore-rota"]
    assert all(re.match(r"^[a-z-]+: [2-4] — ", ln) for ln in answer.splitlines())


def test_an_overflowing_prompt_loses_its_instructions_and_the_count_says_so() -> None:
    prompt = "For each task give one line:\n\n<task>: <score 1-5> — <main reason>\n\n" + "".join(
        f"=== TASK: t{i} ===\n" + "- a long line of output text that fills the window\n" * 20 for i in range(40))
    with FaultServer(FlawedModels(seed=1)) as s:
        over = OllamaBackend(s.url, 10).complete("gemma3:12b", prompt, {"num_ctx": 2048})
        room = OllamaBackend(s.url, 10).complete("gemma3:12b", prompt, {"num_ctx": 16384})
    assert over.prompt_tokens == 2048 and not re.search(r"^t\d+: \d", over.text, re.M)
    assert room.prompt_tokens == -(-len(prompt) // 4) < 16384 and re.search(r"^t39: \d", room.text, re.M)


# ---- per model -------------------------------------------------------------------------------------------------


def test_every_model_stops_exactly_at_num_predict(server: OllamaServer) -> None:
    for model in ("gemma3:12b", "household-1b-q4", "qwen2.5-coder:14b"):
        c = ask(server, model, f"Write about 200 words on the bills.\n\n{DATA}", num_predict=17)
        assert (c.done_reason, len(c.text.split()), c.output_tokens) == ("length", 17, 17), model


def test_format_incapable_models_write_bold_labels(server: OllamaServer) -> None:
    blocks = f"Write 2 notes, each starting with a line === NOTE: <title> ===\n\n{NOTES}"
    table = f"Fill the table, one row per bill:\n\n| Payee | Amount |\n|---|---|\n| <payee> | <amount> |\n\n{DATA}"
    assert text(server, blocks).count("=== NOTE: ") == 2
    assert "| Childminder Lee | 210.00 |" in text(server, table)
    for model in ("vault-unified-4b-q8", "household-1b-q4"):
        assert "=== NOTE:" not in text(server, blocks, model) and "**Note 1: " in text(server, blocks, model)
        assert "| Childminder" not in text(server, table, model) and "- **Childminder Lee**" in text(server, table, model)


def test_coders_write_short_prose_whatever_was_asked(server: OllamaServer) -> None:
    for model in ("qwen2.5-coder:14b", "codegemma:7b", "deepseek-coder:6.7b", "starcoder2:3b"):
        c = text(server, f"Write at least 400 words.\n\n## Saturday\n- <idea>\n\n{DATA}", model)
        assert 230 <= len(c.split()) <= 260 and "##" not in c, model
        assert traits_of(f"ollama:{model}").prose_only_words == 240


def test_thinking_models_burn_num_predict_unless_told_not_to(server: OllamaServer) -> None:
    prompt = f"Write the digest.\n\n## This week\nWhat happens.\n\n{DATA}"
    for model, thinking in (("qwen3:8b", 400), ("deepseek-r1:8b", 600)):
        burnt = ask(server, model, prompt, num_predict=300)
        assert (burnt.text, burnt.done_reason) == ("", "length") and burnt.thinking_tokens >= 300
        direct = ask(server, model, prompt, num_predict=300, think=False)
        assert direct.thinking_tokens == 0 and "## This week" in direct.text
        assert traits_of(model).thinking_words == thinking
    assert ask(server, "qwen3:8b", "/no_think\n" + prompt, num_predict=300).thinking_tokens == 0
    assert ask(server, "deepseek-r1:8b", "/no_think\n" + prompt, num_predict=300).text == ""


def test_json_schema_answers_are_valid_instances(server: OllamaServer) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                               "reasons": {"type": "array", "items": {"type": "string"}}}}
    answer = json.loads(OllamaBackend(server.url, 10).complete("gemma3:12b", "judge", {}, json_schema=schema).text)
    assert answer["score"] == 3 and isinstance(answer["reasons"][0], str)


def test_deterministic_per_seed_and_prompt(server: OllamaServer) -> None:
    prompt = "Summarise the week in a paragraph.\n\n" + DATA
    assert text(server, prompt) == text(server, prompt)
    with OllamaServer(FlawedModels(seed=2)) as s2:
        assert text(s2, prompt) != text(server, prompt)
    assert text(server, prompt.replace("Summarise", "Summarize")) != text(server, prompt)


def test_in_process_double_matches_the_http_path(server: OllamaServer) -> None:
    inproc = ResponderBackend(FlawedModels(seed=1))
    prompt = f"Write 3 notes. Each starts with a line === NOTE: <title> ===\n\n{NOTES}"
    for model, options in [("qwen3:8b", {"num_predict": 300}), ("gemma3:12b", {"num_predict": 40}),
                           ("gemma3:12b", {"num_ctx": 10})]:
        a, b = ask(server, model, prompt, **options), inproc.complete(model, prompt, dict(options))
        assert (a.text, a.done_reason, a.prompt_tokens, a.output_tokens) == (
            b.text, b.done_reason, b.prompt_tokens, b.output_tokens)


def test_the_fault_server_reports_context_lengths_and_serves_known_models() -> None:
    import ollama

    with FaultServer(FlawedModels(seed=0)) as s:
        client = ollama.Client(host=s.url, timeout=10)
        info = client.show("gemma3:12b").modelinfo or {}
        assert info.get("gemma3.context_length") == 131072
        with pytest.raises(ollama.ResponseError):
            client.show("no-such-model:1b")
