"""The Ollama backend through the real `ollama` client against the loopback Ollama server."""

from __future__ import annotations

import threading
from collections.abc import Callable

import ollama
import pytest

from adapters.backends.base import BackendError
from adapters.backends.ollama_backend import OllamaBackend
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply, Request

pytest_plugins = ["tests.server_fixtures"]

SEVEN = "one two three four five six seven"


def fixed(text: str = SEVEN, thinking: str = "") -> Callable[[Request], Reply]:
    return lambda req: Reply(text=text, thinking=thinking)


@pytest.mark.parametrize("stream", [True, False])
def test_answer_and_token_counts(ollama_server: OllamaServer, stream: bool) -> None:
    ollama_server.responder = fixed()
    c = OllamaBackend(ollama_server.url, 5, stream=stream).complete("gemma3:12b", "say it please", {})
    assert (c.text, c.done_reason, c.prompt_tokens, c.output_tokens) == (SEVEN, "stop", 3, 7)
    assert c.model == "ollama:gemma3:12b" and c.thinking_tokens == 0 and c.duration_s > 0
    body = ollama_server.calls("/api/chat")[-1].json()
    assert body["stream"] is stream


@pytest.mark.parametrize("stream", [True, False])
def test_num_predict_cut_reports_length(ollama_server: OllamaServer, stream: bool) -> None:
    ollama_server.responder = fixed()
    c = OllamaBackend(ollama_server.url, 5, stream=stream).complete("m", "go", {"num_predict": 4})
    assert c.text == "one two three four"
    assert (c.done_reason, c.output_tokens) == ("length", 4)


def test_options_think_and_schema_reach_the_server(ollama_server: OllamaServer) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    options = {"num_predict": 50, "num_ctx": 1024, "temperature": 0.3, "top_p": 0.9, "repeat_penalty": 1.15, "seed": 7,
               "think": False}
    OllamaBackend(ollama_server.url, 5).complete(
        "qwen3:8b",
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        options,
        json_schema=schema,
    )
    body = ollama_server.calls("/api/chat")[-1].json()
    assert body["options"] == {"num_predict": 50, "num_ctx": 1024, "temperature": 0.3, "top_p": 0.9,
                               "repeat_penalty": 1.15, "seed": 7}
    assert body["think"] is False and body["format"] == schema
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


@pytest.mark.parametrize("stream", [True, False])
def test_thinking_is_counted_separately_and_spends_the_budget(ollama_server: OllamaServer, stream: bool) -> None:
    ollama_server.responder = fixed(thinking="let me weigh this")
    c = OllamaBackend(ollama_server.url, 5, stream=stream).complete("qwen3:8b", "q", {"num_predict": 6})
    assert c.text == "one two" and c.done_reason == "length"
    assert c.thinking_tokens == 5  # estimated: max(4 words, ceil(17 chars / 4))
    assert c.output_tokens == 6  # eval_count includes thinking, as on Ollama


def test_connection_refused_names_the_host_and_the_fix(closed_port_url: str) -> None:
    with pytest.raises(BackendError) as err:
        OllamaBackend(closed_port_url, 5).complete("m", "hi", {})
    message = str(err.value)
    assert closed_port_url in message and "ollama serve" in message
    assert "backends.ollama.host" in message and "AUTOVAULT_OLLAMA_HOST" in message


def test_host_without_scheme_is_accepted(ollama_server: OllamaServer) -> None:
    c = OllamaBackend(f"127.0.0.1:{ollama_server.port}", 5).complete("m", "hello", {})
    assert c.text == "m answers: hello"


def test_silent_server_times_out_with_the_host_named(ollama_server: OllamaServer) -> None:
    release = threading.Event()

    def stuck(req: Request) -> Reply:
        release.wait(10)
        return Reply(text="late")

    ollama_server.responder = stuck
    try:
        with pytest.raises(BackendError, match=r"timed out after 0\.2s") as err:
            OllamaBackend(ollama_server.url, 0.2, stream=False).complete("m", "hi", {})
        assert ollama_server.url in str(err.value)
    finally:
        release.set()


@pytest.mark.parametrize("stream", [True, False])
def test_unknown_model_says_ollama_pull(stream: bool) -> None:
    with (
        OllamaServer(models=["gemma3:12b"]) as server,
        pytest.raises(BackendError, match=r"run `ollama pull qwen3:8b`") as err,
    ):
        OllamaBackend(server.url, 5, stream=stream).complete("qwen3:8b", "hi", {})
    assert "not found" in str(err.value)


def test_server_error_and_mid_stream_error_are_backend_errors(ollama_server: OllamaServer) -> None:
    ollama_server.responder = lambda req: Reply(status=500, error="llama runner process has terminated")
    with pytest.raises(BackendError, match=r"HTTP 500.*llama runner process has terminated"):
        OllamaBackend(ollama_server.url, 5).complete("m", "hi", {})
    ollama_server.responder = lambda req: Reply(text="partial answer", error="out of memory")
    with pytest.raises(BackendError, match="failed while answering with 'm': out of memory"):
        OllamaBackend(ollama_server.url, 5, stream=True).complete("m", "hi", {})


def test_server_truncates_a_prompt_over_num_ctx_like_ollama(ollama_server: OllamaServer) -> None:
    seen: list[str] = []

    def record(req: Request) -> Reply:
        seen.append(req.prompt)
        return Reply(text="ok")

    ollama_server.responder = record
    prompt = "INSTRUCTIONS first. " + " ".join(f"w{i}" for i in range(100))
    c = OllamaBackend(ollama_server.url, 5).complete("m", prompt, {"num_ctx": 50})
    assert c.prompt_tokens == 50
    assert seen[-1].split() == [f"w{i}" for i in range(50, 100)]


@pytest.mark.parametrize("stream", [True, False])
def test_generate_tags_and_show_speak_the_protocol(stream: bool) -> None:
    with OllamaServer(lambda req: Reply(text=SEVEN), models=["gemma3:12b"]) as server:
        client = ollama.Client(host=server.url, timeout=5)
        if stream:
            parts = list(client.generate("gemma3:12b", "hi", system="sys", options={"num_predict": 3}, stream=True))
            text, final = "".join(p.response or "" for p in parts), parts[-1]
        else:
            final = client.generate("gemma3:12b", "hi", system="sys", options={"num_predict": 3})
            text = final.response or ""
        assert (text, final.done_reason, final.eval_count, final.prompt_eval_count) == ("one two three", "length", 3, 2)
        assert [m.model for m in client.list().models] == ["gemma3:12b"]
        assert client.show("gemma3:12b").parameters == "num_ctx 4096"
        with pytest.raises(ollama.ResponseError) as err:
            client.show("nope")
        assert err.value.status_code == 404
