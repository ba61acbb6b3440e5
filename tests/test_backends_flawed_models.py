"""The flawed-model responder behind the loopback Ollama server, driven through the real Ollama backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from adapters.backends.ollama_backend import OllamaBackend
from domain.runs import Completion
from tests.servers.flawed_models import FlawedModels
from tests.servers.ollama_server import OllamaServer
from tests.servers.responder_backend import ResponderBackend

CONTEXT = "Context: Alice moved the budget review; rain expected; three invoices overdue; Bob shipped the parser."
BRIEFING = f"""Write the morning briefing in about 120 words.

Example:
## Weather
Sunny and 21C all day.
## Calendar
Standup at 9, dentist at 4.
---

{CONTEXT}"""
NOTES = f"""Write 3 notes. Each starts with a line `=== NOTE: <title> ===` followed by the note.

{CONTEXT}"""


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaServer]:
    with OllamaServer(FlawedModels(seed=1)) as s:
        yield s


def ask(server: OllamaServer, model: str, prompt: str, **options: object) -> Completion:
    return OllamaBackend(server.url, 10).complete(model, prompt, dict(options))


def test_every_model_stops_exactly_at_num_predict(server: OllamaServer) -> None:
    for model in ("gemma3:12b", "vault-unified-4b-q8", "qwen2.5-coder:14b"):
        c = ask(server, model, NOTES, num_predict=17)
        assert (c.done_reason, len(c.text.split()), c.output_tokens) == ("length", 17, 17), model


def test_example_is_copied_verbatim_unless_told_not_to(server: OllamaServer) -> None:
    copied = ask(server, "gemma3:12b", BRIEFING).text
    assert copied == "## Weather\nSunny and 21C all day.\n## Calendar\nStandup at 9, dentist at 4."
    fresh = ask(server, "gemma3:12b", BRIEFING.replace("Example:", "Example (structure only, DO NOT COPY):")).text
    assert "## Weather" in fresh and "## Calendar" in fresh  # the structure stays
    assert "Sunny and 21C" not in fresh and "dentist" not in fresh and len(fresh.split()) >= 60


def test_fences_in_the_prompt_come_back_unless_forbidden(server: OllamaServer) -> None:
    fenced = NOTES + "\n\nShape:\n```\n=== NOTE: Title ===\nbody\n```"
    assert ask(server, "gemma3:12b", fenced).text.startswith("```markdown\n")
    assert "```" not in ask(server, "gemma3:12b", fenced + "\nDo not use code fences.").text


def test_placeholders_leak_unless_the_prompt_says_to_replace_them(server: OllamaServer) -> None:
    templated = NOTES + "\nEnd each note with: Source: [Source URL]"
    assert "[Source URL]" in ask(server, "gemma3:12b", templated).text
    assert (
        "[Source URL]"
        not in ask(server, "gemma3:12b", templated + "\nReplace every placeholder with a real value.").text
    )


def test_unified_model_misses_the_note_format_that_gemma_follows(server: OllamaServer) -> None:
    gemma = ask(server, "gemma3:12b", NOTES).text
    unified = ask(server, "vault-unified-4b-q8", NOTES).text
    assert sum(line.startswith("=== NOTE: ") and line.endswith(" ===") for line in gemma.splitlines()) == 3
    assert "=== NOTE:" not in unified and unified.count("**Note ") == 3


def test_coder_writes_short_prose_whatever_was_asked(server: OllamaServer) -> None:
    c = ask(server, "qwen2.5-coder:14b", BRIEFING.replace("about 120 words", "at least 400 words"))
    assert 230 <= len(c.text.split()) <= 260
    assert "##" not in c.text and "Sunny" not in c.text


def test_qwen3_burns_num_predict_on_thinking_unless_think_false(server: OllamaServer) -> None:
    burnt = ask(server, "qwen3:8b", NOTES, num_predict=300)
    assert (burnt.text, burnt.done_reason) == ("", "length") and burnt.thinking_tokens >= 300
    direct = ask(server, "qwen3:8b", NOTES, num_predict=300, think=False)
    assert direct.thinking_tokens == 0 and direct.text.count("=== NOTE: ") == 3


def test_json_schema_answers_are_valid_instances(server: OllamaServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
    }
    answer = json.loads(OllamaBackend(server.url, 10).complete("gemma3:12b", "judge", {}, json_schema=schema).text)
    assert answer["score"] == 3 and isinstance(answer["reasons"][0], str)


def test_deterministic_per_seed_and_prompt(server: OllamaServer) -> None:
    prompt = "Summarise the day. " + CONTEXT
    assert ask(server, "gemma3:12b", prompt).text == ask(server, "gemma3:12b", prompt).text
    other = FlawedModels(seed=2)
    with OllamaServer(other) as s2:
        assert ask(s2, "gemma3:12b", prompt).text != ask(server, "gemma3:12b", prompt).text
    assert ask(server, "gemma3:12b", prompt + " Tuesday.").text != ask(server, "gemma3:12b", prompt).text


def test_in_process_double_matches_the_http_path(server: OllamaServer) -> None:
    inproc = ResponderBackend(FlawedModels(seed=1))
    for model, options in [
        ("qwen3:8b", {"num_predict": 300}),
        ("gemma3:12b", {"num_predict": 40}),
        ("gemma3:12b", {"num_ctx": 10}),
    ]:
        a, b = ask(server, model, NOTES, **options), inproc.complete(model, NOTES, dict(options))
        assert (a.text, a.done_reason, a.prompt_tokens, a.output_tokens) == (
            b.text,
            b.done_reason,
            b.prompt_tokens,
            b.output_tokens,
        )
