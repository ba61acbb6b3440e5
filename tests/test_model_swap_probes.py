"""Health probes behind the model backends, through the real clients against loopback servers that speak each
protocol (and the real GGUF file): a backend that cannot serve a model now is `down` with a one-line reason, one
without a probe is `unknown`, and the router asks each server at most once per PROBE_TTL_S."""

from __future__ import annotations

from pathlib import Path

from adapters.backends.anthropic_backend import AnthropicBackend
from adapters.backends.base import Health
from adapters.backends.embedded import EmbeddedBackend
from adapters.backends.ollama_backend import OllamaBackend
from adapters.backends.openai_backend import OpenAIBackend
from adapters.backends.registry import ModelRouter
from domain.runs import Completion
from testbed.servers import TEST_KEY, AnthropicServer, OllamaServer, OpenAIServer

pytest_plugins = ["tests.server_fixtures"]


def test_ollama_is_up_only_with_the_model_pulled(closed_port_url: str) -> None:
    with OllamaServer(models=["gemma3:12b"], context_length=131072) as server:
        backend = OllamaBackend(server.host, timeout=10)
        assert backend.probe("gemma3:12b") == Health("up", f"ollama at {server.host} has gemma3:12b", "POST /api/show")
        missing = backend.probe("qwen3:8b")
        assert missing.down and "ollama pull qwen3:8b" in missing.detail
        window = backend.context_window("gemma3:12b")
        assert (window.default, window.maximum) == (4096, 131072)
    gone = OllamaBackend(closed_port_url, timeout=10).probe("gemma3:12b")
    assert gone.down and "unreachable" in gone.detail and "AUTOVAULT_OLLAMA_HOST" in gone.detail


def test_an_openai_compatible_server_is_up_when_it_lists_the_model(closed_port_url: str) -> None:
    with OpenAIServer(models=["qwen-local"]) as server:
        backend = OpenAIBackend(base_url=server.base_url, timeout=10, env={})
        assert backend.probe("qwen-local").status == "up"
        other = backend.probe("llama-3")
        assert other.down and "has no model 'llama-3'" in other.detail and "qwen-local" in other.detail
        assert backend.probe(f"llama-3@{server.base_url}").down  # per-model base URL, same answer
    assert OpenAIBackend(base_url=f"{closed_port_url}/v1", timeout=10, env={}).probe("qwen-local").down


def test_anthropic_is_probed_with_a_token_count_that_checks_the_key() -> None:
    with AnthropicServer(api_key=TEST_KEY) as server:
        good = AnthropicBackend(api_key_env="K", base_url=server.url, timeout=10, max_tokens=50, env={"K": TEST_KEY})
        assert good.probe("claude-sonnet-4-5").status == "up"
        assert good.count_tokens("claude-sonnet-4-5", "one two three") == 3
        bad = AnthropicBackend(api_key_env="K", base_url=server.url, timeout=10, max_tokens=50, env={"K": "sk-wrong"})
        refused = bad.probe("claude-sonnet-4-5")
        assert refused.down and "401" in refused.detail and "sk-wrong" not in refused.detail
        assert not server.calls("/v1/messages")  # nothing generated
    none = AnthropicBackend(api_key_env="K", base_url=None, timeout=10, max_tokens=50, env={}).probe("claude")
    assert none.down and "no API key in $K" in none.detail


def test_the_embedded_model_is_up_when_its_gguf_loads(tmp_path: Path) -> None:
    assert EmbeddedBackend(n_ctx=1024).probe("smollm2-135m").status == "up"
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    assert EmbeddedBackend(model_path=str(tmp_path / "absent.gguf")).probe("default").down
    assert EmbeddedBackend().probe(str(broken)).down
    assert EmbeddedBackend().probe("gpt-4").down  # not a model this backend knows


class Plain:
    """A backend double with no probe."""

    def complete(self, model: str, prompt: object, options: dict[str, object], *,
                 json_schema: dict[str, object] | None = None) -> Completion:
        return Completion("x", "stop", 1, 1, 0, 0.0, model)


def test_the_router_caches_probes_and_says_unknown_without_one(closed_port_url: str) -> None:
    with OllamaServer(models=["gemma3:12b"]) as server:
        router = ModelRouter({"plain": Plain})
        router.register("ollama", OllamaBackend(server.host, timeout=10))
        assert router.probe("ollama:gemma3:12b").status == "up"
        assert router.probe("ollama:gemma3:12b").status == "up"
        assert len(server.calls("/api/show")) == 1  # the second answer came from the cache
        assert router.probe("plain:anything").status == "unknown"
        assert router.probe("nobackend:model").down and router.probe("no-colon").down
        router.register("ollama", OllamaBackend(closed_port_url, timeout=10))  # re-registered: asked again
        assert router.probe("ollama:gemma3:12b").down
        assert router.count_tokens("ollama:gemma3:12b", "text") is None  # no tokenizer: callers estimate
