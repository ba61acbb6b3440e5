"""One router from model specs (`ollama:qwen3:8b`, `embedded:smollm2-135m`, ...) to backends.

Backends are built lazily on first use, so a vault that never names `embedded:` never imports llama_cpp,
and a missing API key only matters to the tasks that use that backend. Tests and benchmarks register
doubles under any name (`router.register("fake", backend)` then `fake:model`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from adapters.backends.base import BackendError, ContextWindow, Health, Message, ModelBackend, ModelRef, parse_model
from domain.config import Backends
from domain.runs import Completion

log = structlog.get_logger("autovault.backends")

Factory = Callable[[], ModelBackend]
PROBE_TTL_S = 30.0  # a health answer is reused this long: ranking a pool must not hammer a server


class ModelRouter:
    """`complete(spec, prompt, options)` dispatches on the spec's backend prefix."""

    def __init__(self, factories: Mapping[str, Factory] | None = None) -> None:
        self._factories: dict[str, Factory] = dict(factories or {})
        self._built: dict[str, ModelBackend] = {}
        self._lock = threading.Lock()
        self._probes: dict[str, tuple[float, Health]] = {}

    def register(self, name: str, backend: ModelBackend | Factory) -> None:
        """Add or replace a backend (an object with `complete`, or a zero-argument factory of one)."""
        with self._lock:
            self._built.pop(name, None)
            self._probes = {k: v for k, v in self._probes.items() if not k.startswith(f"{name}:")}
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
        model = _name(ref)
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

    def probe(self, spec: str) -> Health:
        """Whether the backend serving `spec` can serve it now (a cheap request, answer cached PROBE_TTL_S);
        `unknown` for a backend without a probe. Never raises."""
        now = time.monotonic()
        with self._lock:
            hit = self._probes.get(spec)
        if hit is not None and now - hit[0] < PROBE_TTL_S:
            return hit[1]
        health = self._probe(spec)
        with self._lock:
            self._probes[spec] = (now, health)
        if structlog.is_configured():
            log.debug("model probe", model=spec, status=health.status, detail=health.detail)
        return health

    def _probe(self, spec: str) -> Health:
        try:
            ref = parse_model(spec)
            backend = self.backend(ref.backend)
        except (ValueError, BackendError) as e:
            return Health("down", str(e), "model name")
        fn = getattr(backend, "probe", None)
        if fn is None:
            return Health("unknown", f"backend {ref.backend!r} has no health probe")
        try:
            health: Health = fn(_name(ref))
        except BackendError as e:
            return Health("down", str(e))
        except Exception as e:  # a probe is advice: a broken one must not stop a ranking
            return Health("down", f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
        return health

    def count_tokens(self, spec: str, text: str) -> int | None:
        """Prompt tokens by the model's own tokenizer; None when its backend has none (or it fails)."""
        try:
            ref = parse_model(spec)
            fn = getattr(self.backend(ref.backend), "count_tokens", None)
            return int(fn(_name(ref), text)) if fn is not None else None
        except Exception:  # counting is a measurement aid: the caller falls back to an estimate
            return None

    def context_window(self, spec: str) -> ContextWindow | None:
        """The model's context window as its backend reports it; None when unknown."""
        try:
            ref = parse_model(spec)
            fn = getattr(self.backend(ref.backend), "context_window", None)
            window: ContextWindow | None = fn(_name(ref)) if fn is not None else None
        except Exception:
            return None
        return window


def _name(ref: ModelRef) -> str:
    return f"{ref.name}@{ref.base_url}" if ref.base_url else ref.name


def _constant(backend: ModelBackend) -> Factory:
    return lambda: backend


def build_backends(cfg: Backends, env: Mapping[str, str], *, experiments: Path | None = None) -> ModelRouter:
    """The four real backends from vault.yml's `backends:` section; AUTOVAULT_OLLAMA_HOST overrides the host.
    `experiments`: where the embedded backend finds `+lora:<experiment>` adapters (`gpu.paths`).

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
                               temperature=e.temperature, repeat_penalty=e.repeat_penalty, experiments=experiments)

    return ModelRouter({"ollama": ollama, "anthropic": anthropic, "openai": openai, "embedded": embedded})
