"""OpenAI-compatible servers (llama-server, vLLM, LM Studio) through the official client.

`openai:<name>@<base_url>` picks the server per model; otherwise backends.openai.base_url. Local servers
need no key: unless api_key_env names one, a placeholder is sent, never the user's OPENAI_API_KEY.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import openai

from adapters.backends.base import BackendError, Health, Message
from adapters.backends.messages import as_messages, estimate_tokens, pick, scrub
from domain.runs import Completion

FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "function_call": "stop"}
NO_KEY = "sk-no-key-required"


class OpenAIBackend:
    """`openai:<name>[@<base_url>]`."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        env: Mapping[str, str],
        api_key_env: str | None = None,
        stream: bool = False,
        max_retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key_env = api_key_env
        self.stream = stream
        self.max_retries = max_retries
        self._env = env
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        name, _, url = model.partition("@")
        base_url = (url or self.base_url).rstrip("/")
        key = self._key()
        request: dict[str, Any] = {
            "model": name,
            "messages": as_messages(prompt),
            **pick(options, ("temperature", "top_p", "seed")),
        }
        if options.get("num_predict"):
            request["max_tokens"] = int(options["num_predict"])
        if options.get("think") is not None:  # Qwen3-style templates on llama-server and vLLM
            request["extra_body"] = {"chat_template_kwargs": {"enable_thinking": bool(options["think"])}}
        if json_schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json_schema},
            }
        t0 = time.perf_counter()
        problem: str | None = None
        try:
            client = self._client(base_url, key)
            text, reasoning, finish, usage = (
                self._stream(client, request) if self.stream else self._once(client, request)
            )
        except openai.APIError as e:
            problem = scrub(self._explain(e, name, base_url), key)
        if problem is not None:  # raised outside `except`: no chained exception carries request headers
            raise BackendError(problem)
        reasoning_tokens = _reasoning_tokens(usage)
        return Completion(
            text=text,
            done_reason=FINISH_REASONS.get(finish or "stop", finish or "stop"),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            thinking_tokens=reasoning_tokens if reasoning_tokens is not None else estimate_tokens(reasoning),
            duration_s=time.perf_counter() - t0,
            model=f"openai:{model}",
        )

    def probe(self, model: str) -> Health:
        """GET /v1/models: up when the server lists the model (or lists none: it answers, names nothing)."""
        name, _, url = model.partition("@")
        base_url = (url or self.base_url).rstrip("/")
        problem: str | None = None
        try:
            key = self._key()
            listed = [m.id for m in self._client(base_url, key).with_options(max_retries=0).models.list()]
        except BackendError as e:
            return Health("down", str(e), "GET /v1/models")
        except openai.APIError as e:
            problem = scrub(self._explain(e, name, base_url), key)
        if problem is not None:
            return Health("down", problem, "GET /v1/models")
        if listed and name not in listed:
            return Health("down", f"openai-compatible server at {base_url} has no model {name!r} (it lists "
                                  f"{', '.join(listed[:5])})", "GET /v1/models")
        return Health("up", f"openai-compatible server at {base_url} answers for {name}", "GET /v1/models")

    def _key(self) -> str:
        if self.api_key_env is None:
            return NO_KEY
        key = self._env.get(self.api_key_env) or ""
        if not key.strip():
            raise BackendError(
                f"openai: no API key in ${self.api_key_env}: export {self.api_key_env}=... "
                "(or remove backends.openai.api_key_env for a local server)"
            )
        return key

    def _client(self, base_url: str, key: str) -> openai.OpenAI:
        with self._lock:
            client = self._clients.get((base_url, key))
            if client is None:
                client = openai.OpenAI(
                    api_key=key, base_url=base_url, timeout=self.timeout, max_retries=self.max_retries
                )
                self._clients = {k: c for k, c in self._clients.items() if k[0] != base_url}
                self._clients[(base_url, key)] = client
            return client

    @staticmethod
    def _once(client: openai.OpenAI, request: dict[str, Any]) -> tuple[str, str, str | None, Any]:
        resp = client.chat.completions.create(**request, stream=False)
        choice = resp.choices[0]
        reasoning = getattr(choice.message, "reasoning_content", None) or ""
        return choice.message.content or "", str(reasoning), choice.finish_reason, resp.usage

    @staticmethod
    def _stream(client: openai.OpenAI, request: dict[str, Any]) -> tuple[str, str, str | None, Any]:
        text: list[str] = []
        reasoning: list[str] = []
        finish: str | None = None
        usage: Any = None
        stream = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                reasoning.append(str(getattr(choice.delta, "reasoning_content", None) or ""))
                finish = choice.finish_reason or finish
        return "".join(text), "".join(reasoning), finish, usage

    def _explain(self, e: openai.APIError, model: str, base_url: str) -> str:
        if isinstance(e, openai.APITimeoutError):
            return f"openai-compatible server at {base_url} timed out after {self.timeout:g}s (backends.openai.timeout)"
        if isinstance(e, openai.APIConnectionError):
            return (
                f"openai-compatible server at {base_url} is unreachable: is llama-server/vLLM running there? "
                "set backends.openai.base_url or use openai:<name>@<base_url>"
            )
        status = getattr(e, "status_code", None)
        if isinstance(e, openai.AuthenticationError):
            where = f"${self.api_key_env}" if self.api_key_env else "no key (set backends.openai.api_key_env)"
            return f"openai-compatible server at {base_url} rejected the key ({where}) (HTTP 401)"
        if isinstance(e, openai.NotFoundError):
            return f"openai-compatible server at {base_url} has no model {model!r} (HTTP 404): {e.message[:300]}"
        return f"openai-compatible server at {base_url} answered HTTP {status} for {model!r}: {e.message[:300]}"


def _reasoning_tokens(usage: Any) -> int | None:
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    value = getattr(details, "reasoning_tokens", None) if details else None
    return int(value) if value is not None else None
