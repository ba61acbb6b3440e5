"""The OpenAI chat-completions protocol as llama-server / vLLM speak it: POST /v1/chat/completions
(JSON or SSE with a final usage chunk), GET /v1/models, finish_reason "length" at max_tokens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from testbed.servers.loopback import LoopbackServer, Recorded, Response, sse
from testbed.servers.ollama_server import pieces
from testbed.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, echo


class OpenAIServer(LoopbackServer):
    """`OpenAIServer(responder, api_key=None)`; `base_url` is what the client needs (ends in /v1)."""

    def __init__(
        self, responder: Responder = echo, *, api_key: str | None = None, models: list[str] | None = None
    ) -> None:
        super().__init__()
        self.responder = responder
        self.api_key = api_key
        self.models = models
        self.route("POST", "/v1/chat/completions", self._chat)
        self.route("GET", "/v1/models", self._models)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _models(self, _: Recorded) -> Response:
        return Response.json({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models or []]})

    def request_of(self, rec: Recorded) -> Request:
        body = rec.json()
        options = {k: body[k] for k in ("temperature", "top_p", "seed") if k in body}
        budget = body.get("max_completion_tokens") or body.get("max_tokens")
        if budget:
            options["num_predict"] = int(budget)
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        kwargs = (body.get("chat_template_kwargs") or {}).get("enable_thinking")
        return Request(
            model=str(body.get("model") or ""),
            messages=[
                {"role": m.get("role", "user"), "content": m.get("content") or ""} for m in body.get("messages") or []
            ],
            options=options,
            think=kwargs,
            json_schema=schema
            if schema is not None
            else ({"type": "object"} if fmt.get("type") == "json_object" else None),
            stream=bool(body.get("stream")),
            protocol="openai",
            path=rec.path,
            raw=body,
        )

    def _chat(self, rec: Recorded) -> Response:
        if self.api_key is not None and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response.json({"error": {"message": "Invalid API key", "type": "invalid_request_error"}}, 401)
        req = self.request_of(rec)
        if self.models is not None and req.model not in self.models:
            return Response.json(
                {"error": {"message": f"model '{req.model}' not found", "type": "not_found_error"}}, 404
            )
        reply = self.responder(req)
        if reply.status != 200:
            return Response.json(
                {"error": {"message": reply.error or "error", "type": "server_error"}}, reply.status, reply.headers
            )
        if req.think is False:
            reply = Reply(text=reply.text)
        reply = apply_budget(reply, req.num_predict)
        finish = "length" if reply.done_reason == "length" else "stop"
        usage = {
            "prompt_tokens": count_tokens(req.prompt),
            "completion_tokens": count_tokens(reply.thinking) + count_tokens(reply.text),
            "total_tokens": count_tokens(req.prompt) + count_tokens(reply.thinking) + count_tokens(reply.text),
            "completion_tokens_details": {"reasoning_tokens": count_tokens(reply.thinking)},
        }
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        if not req.stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.thinking:
                message["reasoning_content"] = reply.thinking
            body = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
            return Response.json(body)
        include_usage = bool((req.raw.get("stream_options") or {}).get("include_usage"))
        return Response(
            200,
            sse(self._chunks(ident, created, req.model, reply, finish, usage if include_usage else None)),
            "text/event-stream",
        )

    @staticmethod
    def _chunks(
        ident: str, created: int, model: str, reply: Reply, finish: str, usage: dict[str, Any] | None
    ) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        yield None, chunk({"role": "assistant", "content": ""})
        for piece in pieces(reply.thinking):
            yield None, chunk({"reasoning_content": piece})
        for piece in pieces(reply.text):
            yield None, chunk({"content": piece})
        yield None, chunk({}, finish)
        if usage is not None:
            yield (
                None,
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                },
            )
        yield None, "[DONE]"
