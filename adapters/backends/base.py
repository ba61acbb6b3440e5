"""The one interface every model backend speaks, and the parsing of model names like `ollama:qwen3:8b`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from domain.runs import Completion

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class BackendError(RuntimeError):
    """A model call failed in a way the user can act on; the message names the host or the key to fix."""


class ModelBackend(Protocol):
    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion: ...


@dataclass(frozen=True)
class Health:
    """What a cheap request to a model's backend said: `up` (it answers and has the model), `down` (unreachable,
    refusing, or without the model: never a candidate), `unknown` (this backend cannot be probed)."""

    status: Literal["up", "down", "unknown"]
    detail: str  # one line naming the host or the file and, when down, the fix
    checked: str = ""  # the request made, e.g. "POST /api/show"

    @property
    def down(self) -> bool:
        return self.status == "down"


@dataclass(frozen=True)
class ContextWindow:
    """How many tokens a call sees: `default` without num_ctx, `maximum` as far as num_ctx can be raised."""

    default: int | None
    maximum: int | None
    source: str  # where the figures come from, e.g. "GGUF metadata llama.context_length; backends.embedded.n_ctx"


class Probing(Protocol):
    """A backend that can say cheaply whether it can serve a model now."""

    def probe(self, model: str) -> Health: ...


class Tokenizing(Protocol):
    """A backend with the model's own tokenizer: prompt tokens exactly as a call would count them."""

    def count_tokens(self, model: str, text: str) -> int: ...


class Windowed(Protocol):
    def context_window(self, model: str) -> ContextWindow: ...


@dataclass(frozen=True)
class ModelRef:
    backend: str  # ollama | anthropic | openai | embedded | any name registered in tests
    name: str  # the model as the backend knows it
    base_url: str | None = None  # openai:<name>@<base_url>

    @property
    def spec(self) -> str:
        return f"{self.backend}:{self.name}" + (f"@{self.base_url}" if self.base_url else "")


def parse_model(spec: str) -> ModelRef:
    """`ollama:qwen3:8b`, `anthropic:claude-sonnet-5-5`, `openai:name@http://host/v1`, `embedded:smollm2-135m`."""
    backend, sep, rest = spec.partition(":")
    if not sep or not backend or not rest:
        if spec == "embedded":
            return ModelRef("embedded", "smollm2-135m")
        raise ValueError(f"model {spec!r} must look like 'backend:name' (e.g. ollama:qwen3:8b, embedded:smollm2-135m)")
    if backend == "openai" and "@" in rest:
        name, _, url = rest.partition("@")
        return ModelRef(backend, name, url)
    return ModelRef(backend, rest)
