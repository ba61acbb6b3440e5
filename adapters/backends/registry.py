"""One router from model specs (`ollama:qwen3:8b`, `embedded:smollm2-135m`, ...) to backends.

Backends are built lazily on first use, so a vault that never names `embedded:` never imports llama_cpp,
and a missing API key only matters to the tasks that use that backend. Tests and benchmarks register
doubles under any name (`router.register("fake", backend)` then `fake:model`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from adapters.backends.base import BackendError, Message, ModelBackend, parse_model
from domain.config import Backends
from domain.runs import Completion

log = structlog.get_logger("autovault.backends")

Factory = Callable[[], ModelBackend]


class ModelRouter:
    """`complete(spec, prompt, options)` dispatches on the spec's backend prefix."""

    def __init__(self, factories: Mapping[str, Factory] | None = None) -> None:
        self._factories: dict[str, Factory] = dict(factories or {})
        self._built: dict[str, ModelBackend] = {}
        self._lock = threading.Lock()

    def register(self, name: str, backend: ModelBackend | Factory) -> None:
        """Add or replace a backend (an object with `complete`, or a zero-argument factory of one)."""
        with self._lock:
            self._built.pop(name, None)
            if hasattr(backend, "complete"):
                self._built[name] = backend
                self._factories[name] = _constant(backend)
            else:
                self._factories[name] = backend

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def backend(self, name: str) -> ModelBackend:
        with self._lock:
            built = self._built.get(name)
            if built is None:
                factory = self._factories.get(name)
                if factory is None:
                    known = ", ".join(sorted(self._factories)) or "none"
                    raise BackendError(f"unknown model backend {name!r}; known backends: {known}")
                built = self._built[name] = factory()
            return built

    def complete(
        self,
        spec: str,
        prompt: str | list[Message],
        options: Mapping[str, Any] | None = None,
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        try:
            ref = parse_model(spec)
        except ValueError as e:
            raise BackendError(str(e)) from None
        backend = self.backend(ref.backend)
        model = f"{ref.name}@{ref.base_url}" if ref.base_url else ref.name
        t0 = time.perf_counter()
        completion = backend.complete(model, prompt, dict(options or {}), json_schema=json_schema)
        if structlog.is_configured():  # unconfigured structlog prints every level: keep benchmark tables clean
            log.debug(
                "model call",
                model=spec,
                done_reason=completion.done_reason,
                prompt_tokens=completion.prompt_tokens,
                output_tokens=completion.output_tokens,
                thinking_tokens=completion.thinking_tokens,
                seconds=round(time.perf_counter() - t0, 3),
            )
        return completion


def _constant(backend: ModelBackend) -> Factory:
    return lambda: backend


def build_backends(cfg: Backends, env: Mapping[str, str]) -> ModelRouter:
    """The four real backends from vault.yml's `backends:` section; AUTOVAULT_OLLAMA_HOST overrides the host.

    `env` is read at call time by the key-holding backends (pass os.environ to see a rotated key)."""

    def ollama() -> ModelBackend:
        from adapters.backends.ollama_backend import OllamaBackend

        return OllamaBackend(env.get("AUTOVAULT_OLLAMA_HOST") or cfg.ollama.host, cfg.ollama.timeout)

    def anthropic() -> ModelBackend:
        from adapters.backends.anthropic_backend import AnthropicBackend

        a = cfg.anthropic
        return AnthropicBackend(
            api_key_env=a.api_key_env, base_url=a.base_url, timeout=a.timeout, max_tokens=a.max_tokens, env=env
        )

    def openai() -> ModelBackend:
        from adapters.backends.openai_backend import OpenAIBackend

        o = cfg.openai
        return OpenAIBackend(base_url=o.base_url, timeout=o.timeout, env=env, api_key_env=o.api_key_env)

    def embedded() -> ModelBackend:
        from adapters.backends.embedded import EmbeddedBackend

        e = cfg.embedded
        return EmbeddedBackend(model_path=e.model_path, n_ctx=e.n_ctx, threads=e.threads, seed=e.seed,
                               temperature=e.temperature, repeat_penalty=e.repeat_penalty)

    return ModelRouter({"ollama": ollama, "anthropic": anthropic, "openai": openai, "embedded": embedded})
