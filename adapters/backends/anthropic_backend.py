"""Anthropic through the official client. The key is read from the environment at call time, lives only
inside the client object, and is scrubbed from every message this module produces."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import anthropic

from adapters.backends.base import BackendError, Health, Message
from adapters.backends.messages import as_messages, pick, scrub, split_system
from domain.runs import Completion

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length"}
ANSWER_TOOL = "answer"


class AnthropicBackend:
    """`anthropic:<model>`; json_schema forces a tool named `answer` whose input is the answer."""

    def __init__(
        self,
        *,
        api_key_env: str,
        base_url: str | None,
        timeout: float,
        max_tokens: int,
        env: Mapping[str, str],
        stream: bool = False,
        max_retries: int = 2,
    ) -> None:
        self.api_key_env = api_key_env
        self.base_url = base_url
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.stream = stream
        self.max_retries = max_retries
        self._env = env
        self._lock = threading.Lock()
        self._client: anthropic.Anthropic | None = None

    def __repr__(self) -> str:
        return f"AnthropicBackend(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    @property
    def where(self) -> str:
        return self.base_url or "https://api.anthropic.com"

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        key = self._env.get(self.api_key_env) or ""
        if not key.strip():
            raise BackendError(
                f"anthropic: no API key in ${self.api_key_env}: export {self.api_key_env}=... "
                "(or name another variable in backends.anthropic.api_key_env)"
            )
        request = self._request(model, prompt, options, json_schema)
        t0 = time.perf_counter()
        problem: str | None = None
        try:
            message = self._call(key, request)
        except anthropic.APIError as e:
            problem = scrub(self._explain(e, model), key)
        if problem is not None:  # raised outside `except`: no chained exception carries request headers
            raise BackendError(problem)
        return Completion(
            text=self._text(message, json_schema is not None),
            done_reason=STOP_REASONS.get(message.stop_reason or "end_turn", message.stop_reason or "stop"),
            prompt_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            duration_s=time.perf_counter() - t0,
            model=f"anthropic:{model}",
        )

    def probe(self, model: str) -> Health:
        """POST /v1/messages/count_tokens: checks the key, the model and the host without generating."""
        try:
            self.count_tokens(model, "ping")
        except BackendError as e:
            return Health("down", str(e), "POST /v1/messages/count_tokens")
        return Health("up", f"anthropic at {self.where} accepts the key for {model}", "POST /v1/messages/count_tokens")

    def count_tokens(self, model: str, text: str) -> int:
        key = self._env.get(self.api_key_env) or ""
        if not key.strip():
            raise BackendError(f"anthropic: no API key in ${self.api_key_env}: export {self.api_key_env}=...")
        system, turns = split_system(as_messages(text))
        extra: dict[str, Any] = {"system": system} if system else {}
        problem: str | None = None
        try:
            counted = self._client_for(key).with_options(max_retries=0).messages.count_tokens(
                model=model, messages=turns, **extra)  # type: ignore[arg-type]
        except anthropic.APIError as e:
            problem = scrub(self._explain(e, model), key)
        if problem is not None:
            raise BackendError(problem)
        return int(counted.input_tokens)

    def _request(
        self, model: str, prompt: str | list[Message], options: dict[str, Any], json_schema: dict[str, Any] | None
    ) -> dict[str, Any]:
        system, turns = split_system(as_messages(prompt))
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": int(options.get("num_predict") or self.max_tokens),
            "messages": turns,
        }
        sampling = pick(options, ("temperature", "top_p"))
        if sampling:  # not named parameters in every client version; the API field is the same
            request["extra_body"] = sampling
        if system:
            request["system"] = system
        if json_schema is not None:
            request["tools"] = [
                {"name": ANSWER_TOOL, "description": "Give the answer as structured data.", "input_schema": json_schema}
            ]
            request["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}
        return request

    def _call(self, key: str, request: dict[str, Any]) -> Any:
        client = self._client_for(key)
        if self.stream:
            with client.messages.stream(**request) as events:
                return events.get_final_message()
        return client.messages.create(**request)

    def _client_for(self, key: str) -> anthropic.Anthropic:
        """One client per key value: a rotated key in the environment takes effect on the next call."""
        with self._lock:
            if self._client is None or self._client.api_key != key:
                if self._client is not None:
                    self._client.close()
                self._client = anthropic.Anthropic(
                    api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
                )
            return self._client

    @staticmethod
    def _text(message: Any, structured: bool) -> str:
        if structured:
            for block in message.content:
                if block.type == "tool_use" and block.name == ANSWER_TOOL:
                    return json.dumps(block.input, ensure_ascii=False)
        return "".join(block.text for block in message.content if block.type == "text")

    def _explain(self, e: anthropic.APIError, model: str) -> str:
        where = self.where
        if isinstance(e, anthropic.APITimeoutError):
            return f"anthropic at {where} timed out after {self.timeout:g}s (backends.anthropic.timeout)"
        if isinstance(e, anthropic.APIConnectionError):
            return f"anthropic at {where} is unreachable: check backends.anthropic.base_url and the network"
        status = getattr(e, "status_code", None)
        detail = _server_message(e)
        if isinstance(e, anthropic.AuthenticationError):
            return f"anthropic at {where} rejected the key in ${self.api_key_env} (HTTP 401): check or replace it"
        if isinstance(e, anthropic.PermissionDeniedError):
            return f"anthropic at {where} refused the key in ${self.api_key_env} for {model!r} (HTTP 403): {detail}"
        if isinstance(e, anthropic.RateLimitError):
            return f"anthropic at {where} is rate limiting (HTTP 429) after {self.max_retries} retries: {detail}"
        if isinstance(e, anthropic.NotFoundError):
            return f"anthropic at {where} has no model {model!r} (HTTP 404): {detail}"
        if status is not None and status >= 500:
            return f"anthropic at {where} failed with HTTP {status} after {self.max_retries} retries: {detail}"
        return f"anthropic at {where} refused the request for {model!r} (HTTP {status}): {detail}"


def _server_message(e: anthropic.APIError) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:300]
    return type(e).__name__
