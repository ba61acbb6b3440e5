"""The Anthropic backend through the real `anthropic` client against the loopback Messages API."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import structlog

from adapters.backends.anthropic_backend import AnthropicBackend
from adapters.backends.base import BackendError
from adapters.backends.registry import ModelRouter
from testbed.servers.anthropic_server import TEST_KEY, AnthropicServer, sent_key
from testbed.servers.protocol import Reply, Request

pytest_plugins = ["tests.server_fixtures"]

ENV = "AUTOVAULT_TEST_ANTHROPIC_KEY"
SEVEN = "one two three four five six seven"


def backend(server: AnthropicServer, env: dict[str, str] | None = None, **kw: object) -> AnthropicBackend:
    args: dict[str, object] = {"api_key_env": ENV, "base_url": server.url, "timeout": 5, "max_tokens": 64}
    return AnthropicBackend(**{**args, **kw}, env={ENV: TEST_KEY} if env is None else env)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [True, False])
def test_answer_usage_and_system_prompt(anthropic_server: AnthropicServer, stream: bool) -> None:
    anthropic_server.responder = lambda req: Reply(text=SEVEN)
    messages = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hello there"}]
    c = backend(anthropic_server, stream=stream).complete("claude-test", messages, {"temperature": 0.2})
    assert (c.text, c.done_reason, c.prompt_tokens, c.output_tokens) == (SEVEN, "stop", 4, 7)
    assert c.model == "anthropic:claude-test"
    body = anthropic_server.calls("/v1/messages")[-1].json()
    assert body["system"] == "be terse" and body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2  # config max_tokens when num_predict is unset
    assert bool(body.get("stream")) is stream


@pytest.mark.parametrize("stream", [True, False])
def test_max_tokens_stop_is_length(anthropic_server: AnthropicServer, stream: bool) -> None:
    anthropic_server.responder = lambda req: Reply(text=SEVEN)
    c = backend(anthropic_server, stream=stream).complete("m", "go", {"num_predict": 3})
    assert (c.text, c.done_reason, c.output_tokens) == ("one two three", "length", 3)
    assert anthropic_server.calls("/v1/messages")[-1].json()["max_tokens"] == 3


@pytest.mark.parametrize("stream", [True, False])
def test_json_schema_is_a_forced_answer_tool(anthropic_server: AnthropicServer, stream: bool) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    anthropic_server.responder = lambda req: Reply(text=json.dumps({"score": 4, "why": "clear"}))
    c = backend(anthropic_server, stream=stream).complete("m", "judge this", {}, json_schema=schema)
    assert json.loads(c.text) == {"score": 4, "why": "clear"} and c.done_reason == "stop"
    body = anthropic_server.calls("/v1/messages")[-1].json()
    assert body["tools"][0]["name"] == "answer" and body["tools"][0]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


def test_missing_key_names_the_variable_and_sends_nothing(anthropic_server: AnthropicServer) -> None:
    with pytest.raises(BackendError, match=f"no API key in \\${ENV}") as err:
        backend(anthropic_server, env={}).complete("m", "hi", {})
    assert "api_key_env" in str(err.value)
    assert anthropic_server.requests == []


def test_key_is_read_at_call_time(anthropic_server: AnthropicServer) -> None:
    env = {ENV: "sk-old-key-000000"}
    b = backend(anthropic_server, env=env)
    with pytest.raises(BackendError, match="HTTP 401"):
        b.complete("m", "hi", {})
    env[ENV] = TEST_KEY
    assert b.complete("m", "hi", {}).done_reason == "stop"
    assert [sent_key(r) for r in anthropic_server.requests] == ["sk-old-key-000000", TEST_KEY]


def test_key_goes_only_into_the_auth_header_never_logs_or_errors(
    anthropic_server: AnthropicServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-ant-WRONG-7f3a9c1e5b"
    caplog.set_level(logging.DEBUG)
    router = ModelRouter()
    with structlog.testing.capture_logs() as events:
        router.register("anthropic", backend(anthropic_server))
        router.complete("anthropic:m", "hi", {"num_predict": 5})
        router.register("anthropic", backend(anthropic_server, env={ENV: wrong}))
        with pytest.raises(BackendError) as err:
            router.complete("anthropic:m", "hi", {})
    ok, rejected = anthropic_server.requests
    assert sent_key(ok) == TEST_KEY and sent_key(rejected) == wrong
    for rec in (ok, rejected):
        secret = sent_key(rec) or ""
        assert secret not in rec.text  # not in the body or path
        assert sum(secret in v for v in rec.headers.values()) == 1
    text = f"{err.value}\n{err.value!r}\n{err.value.__context__!r}\n{err.value.__cause__!r}"
    assert wrong not in text and ENV in text and "401" in text
    logged = caplog.text + repr(events) + repr(router.backend("anthropic"))
    assert caplog.records and events  # something was logged, and none of it holds a key
    assert TEST_KEY not in logged and wrong not in logged


def test_rate_limit_is_retried_then_explained(anthropic_server: AnthropicServer) -> None:
    anthropic_server.responder = lambda req: Reply(
        status=429, error="rate limit exceeded", headers={"retry-after-ms": "1"}
    )
    with pytest.raises(BackendError, match=r"rate limiting \(HTTP 429\) after 2 retries: rate limit exceeded"):
        backend(anthropic_server).complete("m", "hi", {})
    assert len(anthropic_server.requests) == 3


def test_transient_server_error_is_retried(anthropic_server: AnthropicServer) -> None:
    failures = [Reply(status=500, error="internal", headers={"retry-after-ms": "1"})]

    def flaky(req: Request) -> Reply:
        return failures.pop() if failures else Reply(text="fine")

    anthropic_server.responder = flaky
    assert backend(anthropic_server).complete("m", "hi", {}).text == "fine"
    assert len(anthropic_server.requests) == 2


def test_persistent_server_error_names_status_and_host(anthropic_server: AnthropicServer) -> None:
    anthropic_server.responder = lambda req: Reply(status=500, error="internal", headers={"x-should-retry": "false"})
    with pytest.raises(BackendError, match="HTTP 500") as err:
        backend(anthropic_server).complete("m", "hi", {})
    assert anthropic_server.url in str(err.value) and len(anthropic_server.requests) == 1


def test_connection_refused_names_the_base_url(closed_port_url: str) -> None:
    b = AnthropicBackend(
        api_key_env=ENV, base_url=closed_port_url, timeout=5, max_tokens=8, env={ENV: TEST_KEY}, max_retries=0
    )
    with pytest.raises(BackendError, match="unreachable") as err:
        b.complete("m", "hi", {})
    assert closed_port_url in str(err.value) and TEST_KEY not in str(err.value)


def test_server_accepts_either_key_header(anthropic_server: AnthropicServer) -> None:
    import httpx

    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for headers, status in [({"x-api-key": TEST_KEY}, 200), ({"authorization": f"Bearer {TEST_KEY}"}, 200), ({}, 401)]:
        r = httpx.post(f"{anthropic_server.url}/v1/messages", json=body, headers=headers, timeout=5)
        assert r.status_code == status
    assert r.json()["error"]["type"] == "authentication_error"


def test_silent_server_times_out_with_the_setting_named(anthropic_server: AnthropicServer) -> None:
    release = threading.Event()

    def stuck(req: Request) -> Reply:
        release.wait(10)
        return Reply(text="late")

    anthropic_server.responder = stuck
    try:
        with pytest.raises(BackendError, match=r"timed out after 0\.2s \(backends\.anthropic\.timeout\)"):
            backend(anthropic_server, timeout=0.2, max_retries=0).complete("m", "hi", {})
    finally:
        release.set()
