"""The model router: dispatch on the spec's prefix, registration of doubles, lazy construction."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from adapters.backends.base import BackendError, Message
from adapters.backends.registry import ModelRouter, build_backends
from domain.config import Backends, OllamaBackend
from domain.runs import Completion
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply

pytest_plugins = ["tests.server_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


class Double:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any], Any]] = []

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        self.calls.append((model, prompt, options, json_schema))
        return Completion(text="ok", done_reason="stop", prompt_tokens=1, output_tokens=1, model=f"fake:{model}")


def test_dispatches_on_the_prefix_and_passes_everything_through() -> None:
    router, double = ModelRouter(), Double()
    router.register("fake", double)
    schema = {"type": "object"}
    c = router.complete("fake:qwen3:8b", "hi", {"num_predict": 3}, json_schema=schema)
    assert c.text == "ok" and double.calls == [("qwen3:8b", "hi", {"num_predict": 3}, schema)]


def test_factories_are_built_once_on_first_use() -> None:
    built: list[Double] = []

    def factory() -> Double:
        built.append(Double())
        return built[-1]

    router = ModelRouter({"lazy": factory})
    assert built == []
    router.complete("lazy:a", "x")
    router.complete("lazy:b", "y")
    assert len(built) == 1 and [c[0] for c in built[0].calls] == ["a", "b"]


def test_unknown_backend_and_bad_spec_are_backend_errors() -> None:
    router = build_backends(Backends(), {})
    with pytest.raises(
        BackendError, match="unknown model backend 'nope'; known backends: anthropic, embedded, ollama, openai"
    ):
        router.complete("nope:model", "hi")
    with pytest.raises(BackendError, match="must look like 'backend:name'"):
        router.complete("justaname", "hi")


def test_env_host_overrides_config_host(closed_port_url: str) -> None:
    cfg = Backends(ollama=OllamaBackend(host=closed_port_url, timeout=5))
    with OllamaServer(lambda req: Reply(text="via env")) as server:
        router = build_backends(cfg, {"AUTOVAULT_OLLAMA_HOST": server.url})
        assert router.complete("ollama:gemma3:12b", "hi").text == "via env"
    with pytest.raises(BackendError, match=closed_port_url):
        build_backends(cfg, {}).complete("ollama:gemma3:12b", "hi")


def test_missing_anthropic_key_only_matters_when_anthropic_is_used() -> None:
    router = build_backends(Backends(), {})
    router.register("fake", Double())
    assert router.complete("fake:m", "hi").text == "ok"
    with pytest.raises(BackendError, match=r"\$ANTHROPIC_API_KEY"):
        router.complete("anthropic:claude-test", "hi")


def test_llama_cpp_is_not_imported_unless_an_embedded_model_is_used() -> None:
    with OllamaServer() as server:
        code = textwrap.dedent(
            f"""
            import sys
            from adapters.backends.registry import build_backends
            from domain.config import Backends
            router = build_backends(Backends(), {{"AUTOVAULT_OLLAMA_HOST": "{server.url}"}})
            assert router.complete("ollama:m", "hi").text == "m answers: hi"
            print("llama_cpp" in sys.modules)
            """
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_openai_spec_with_base_url_reaches_that_server() -> None:
    from testbed.servers.openai_server import OpenAIServer

    with OpenAIServer(lambda req: Reply(text="hello from llama-server")) as server:
        c = build_backends(Backends(), {}).complete(f"openai:smol@{server.base_url}", "hi", {"num_predict": 2})
    assert (c.text, c.done_reason) == ("hello from", "length")
