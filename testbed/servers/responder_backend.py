"""A ModelBackend that answers in process from a responder (no HTTP): the zero-latency double for
benchmarks. Same token accounting as the loopback servers: words are tokens, num_ctx truncates the prompt
from the front, num_predict cuts thinking then text exactly, eval tokens include thinking."""

from __future__ import annotations

import time
from typing import Any

from adapters.backends.base import Message
from adapters.backends.messages import as_messages
from domain.runs import Completion
from testbed.servers.ollama_server import DEFAULT_NUM_CTX
from testbed.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, fit_context


class ResponderBackend:
    """`router.register("flawed", ResponderBackend(FlawedModels(seed=1)))` then `flawed:qwen3:8b`."""

    def __init__(self, responder: Responder, *, name: str = "inprocess", num_ctx: int = DEFAULT_NUM_CTX) -> None:
        self.responder = responder
        self.name = name
        self.num_ctx = num_ctx
        self.requests: list[Request] = []

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        t0 = time.perf_counter()
        messages, prompt_tokens = fit_context(as_messages(prompt), int(options.get("num_ctx") or self.num_ctx))
        opts = {k: v for k, v in options.items() if k != "think"}
        request = Request(model, messages, opts, options.get("think"), json_schema, protocol=self.name)
        self.requests.append(request)
        reply = self.responder(request)
        if reply.status != 200:
            from adapters.backends.base import BackendError

            raise BackendError(f"{self.name}: {model!r} failed with status {reply.status}: {reply.error}")
        if request.think is False:
            reply = Reply(text=reply.text)
        reply = apply_budget(reply, request.num_predict)
        return Completion(
            text=reply.text,
            done_reason=reply.done_reason,
            prompt_tokens=prompt_tokens,
            output_tokens=count_tokens(reply.thinking) + count_tokens(reply.text),
            thinking_tokens=count_tokens(reply.thinking),
            duration_s=time.perf_counter() - t0,
            model=f"{self.name}:{model}",
        )
