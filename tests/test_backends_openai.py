"""The OpenAI-compatible backend through the real `openai` client against the loopback chat-completions server."""

from __future__ import annotations

import json

import pytest

from adapters.backends.base import BackendError
from adapters.backends.openai_backend import NO_KEY, OpenAIBackend
from testbed.servers.openai_server import OpenAIServer
from testbed.servers.protocol import Reply

pytest_plugins = ["tests.server_fixtures"]

SEVEN = "one two three four five six seven"


@pytest.mark.parametrize("stream", [True, False])
def test_answer_and_usage(openai_server: OpenAIServer, stream: bool) -> None:
    openai_server.responder = lambda req: Reply(text=SEVEN)
    b = OpenAIBackend(base_url=openai_server.base_url, timeout=5, env={}, stream=stream)
    c = b.complete("qwen3-8b", "say it", {"temperature": 0.1, "seed": 3, "num_ctx": 99})
    assert (c.text, c.done_reason, c.prompt_tokens, c.output_tokens) == (SEVEN, "stop", 2, 7)
    body = openai_server.calls("/v1/chat/completions")[-1].json()
    assert body["temperature"] == 0.1 and body["seed"] == 3 and "num_ctx" not in body
    assert bool(body.get("stream")) is stream


@pytest.mark.parametrize("stream", [True, False])
def test_max_tokens_finish_is_length_and_reasoning_counted(openai_server: OpenAIServer, stream: bool) -> None:
    openai_server.responder = lambda req: Reply(text=SEVEN, thinking="hmm ok")
    b = OpenAIBackend(base_url=openai_server.base_url, timeout=5, env={}, stream=stream)
    c = b.complete("m", "go", {"num_predict": 5})
    assert (c.text, c.done_reason, c.thinking_tokens, c.output_tokens) == ("one two three", "length", 2, 5)
    assert openai_server.calls("/v1/chat/completions")[-1].json()["max_tokens"] == 5


def test_think_false_and_json_schema_reach_the_server(openai_server: OpenAIServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    openai_server.responder = lambda req: Reply(text=json.dumps({"ok": True}), thinking="never shown")
    c = OpenAIBackend(base_url=openai_server.base_url, timeout=5, env={}).complete(
        "m", "x", {"think": False}, json_schema=schema
    )
    assert json.loads(c.text) == {"ok": True} and c.thinking_tokens == 0
    body = openai_server.calls("/v1/chat/completions")[-1].json()
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_model_at_base_url_picks_the_server(openai_server: OpenAIServer) -> None:
    with OpenAIServer(lambda req: Reply(text="from the other one")) as other:
        b = OpenAIBackend(base_url=openai_server.base_url, timeout=5, env={})
        url = other.base_url
        c = b.complete(f"llama@{url}", "hi", {})
    assert c.text == "from the other one" and c.model == f"openai:llama@{url}"
    assert openai_server.requests == [] and other.calls("/v1/chat/completions")[0].json()["model"] == "llama"


def test_local_server_gets_a_placeholder_key_not_openai_api_key(openai_server: OpenAIServer) -> None:
    OpenAIBackend(base_url=openai_server.base_url, timeout=5, env={"OPENAI_API_KEY": "sk-real-user-key"}).complete(
        "m", "hi", {}
    )
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {NO_KEY}"


def test_named_key_is_required_and_sent() -> None:
    with OpenAIServer(api_key="sk-vllm-1234567") as server:
        with pytest.raises(BackendError, match=r"no API key in \$VLLM_KEY"):
            OpenAIBackend(base_url=server.base_url, timeout=5, env={}, api_key_env="VLLM_KEY").complete("m", "hi", {})
        wrong = OpenAIBackend(
            base_url=server.base_url, timeout=5, env={"VLLM_KEY": "sk-wrong-99999"}, api_key_env="VLLM_KEY"
        )
        with pytest.raises(BackendError, match=r"rejected the key \(\$VLLM_KEY\)") as err:
            wrong.complete("m", "hi", {})
        assert "sk-wrong-99999" not in str(err.value)
        right = OpenAIBackend(
            base_url=server.base_url, timeout=5, env={"VLLM_KEY": "sk-vllm-1234567"}, api_key_env="VLLM_KEY"
        )
        assert right.complete("m", "hi", {}).text == "m answers: hi"


def test_unknown_model_and_refused_connection_are_explained(closed_port_url: str) -> None:
    with (
        OpenAIServer(models=["llama"]) as server,
        pytest.raises(BackendError, match=r"has no model 'mistral' \(HTTP 404\)"),
    ):
        OpenAIBackend(base_url=server.base_url, timeout=5, env={}).complete("mistral", "hi", {})
    refused = OpenAIBackend(base_url=f"{closed_port_url}/v1", timeout=5, env={}, max_retries=0)
    with pytest.raises(BackendError, match="unreachable") as err:
        refused.complete("m", "hi", {})
    assert closed_port_url in str(err.value) and "backends.openai.base_url" in str(err.value)
