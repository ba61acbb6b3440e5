"""Ollama's HTTP protocol: /api/chat, /api/generate (streamed NDJSON or one object), /api/tags, /api/show.

Like a real Ollama it truncates a prompt longer than num_ctx (default 4096 tokens) from the front and
reports prompt_eval_count = num_ctx, and it stops exactly at num_predict with done_reason "length".
`eval_count` counts thinking and answer tokens together, as Ollama does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from testbed.servers.loopback import LoopbackServer, Recorded, Response, ndjson
from testbed.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, echo, fit_context

DEFAULT_NUM_CTX = 4096
_PIECE = re.compile(r"\s*\S+\s*|\s+")


def pieces(text: str) -> list[str]:
    """Stream chunks: one word with its surrounding spaces each, so joined they give the text back."""
    return _PIECE.findall(text)


class OllamaServer(LoopbackServer):
    """`OllamaServer(responder, models=[...])`: with `models`, other names get Ollama's 404."""

    def __init__(
        self, responder: Responder = echo, *, models: list[str] | None = None, num_ctx: int = DEFAULT_NUM_CTX,
        context_length: int | None = None,
    ) -> None:
        super().__init__()
        self.responder = responder
        self.models = models
        self.num_ctx = num_ctx
        self.context_length = context_length  # the trained length /api/show reports in model_info
        self.route("POST", "/api/chat", lambda r: self._answer(r, chat=True))
        self.route("POST", "/api/generate", lambda r: self._answer(r, chat=False))
        self.route("GET", "/api/tags", self._tags)
        self.route("POST", "/api/show", self._show)
        self.route("GET", "/api/version", lambda r: Response.json({"version": "0.6.3-loopback"}))

    @property
    def host(self) -> str:
        return self.url

    def _missing(self, model: str) -> Response | None:
        if self.models is not None and model not in self.models:
            return Response.json({"error": f'model "{model}" not found, try pulling it first'}, 404)
        return None

    def _tags(self, _: Recorded) -> Response:
        return Response.json({"models": [{"name": m, "model": m, "size": 0} for m in self.models or []]})

    def _show(self, rec: Recorded) -> Response:
        model = str(rec.json().get("model") or rec.json().get("name") or "")
        missing = self._missing(model)
        if missing:
            return missing
        return Response.json(
            {
                "modelfile": "",
                "parameters": f"num_ctx {self.num_ctx}",
                "details": {"family": "loopback"},
                "model_info": {"loopback.context_length": self.context_length} if self.context_length else {},
            }
        )

    def request_of(self, rec: Recorded, chat: bool) -> tuple[Request, int]:
        body = rec.json()
        if chat:
            messages = [
                {"role": m.get("role", "user"), "content": m.get("content") or ""} for m in body.get("messages") or []
            ]
        else:
            messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + [
                {"role": "user", "content": body.get("prompt") or ""}
            ]
        options = dict(body.get("options") or {})
        num_ctx = int(options.get("num_ctx") or self.num_ctx)
        messages, prompt_tokens = fit_context(messages, num_ctx)
        fmt = body.get("format")
        req = Request(
            model=str(body.get("model") or ""),
            messages=messages,
            options=options,
            think=body.get("think"),
            json_schema=fmt if isinstance(fmt, dict) else ({"type": "object"} if fmt == "json" else None),
            stream=body.get("stream", True) is not False,
            protocol="ollama",
            path=rec.path,
            raw=body,
        )
        return req, prompt_tokens

    def _answer(self, rec: Recorded, chat: bool) -> Response:
        t0 = time.perf_counter_ns()
        req, prompt_tokens = self.request_of(rec, chat)
        missing = self._missing(req.model)
        if missing:
            return missing
        reply = self.responder(req)
        if reply.status != 200:
            return Response.json({"error": reply.error or "error"}, reply.status, reply.headers)
        if req.think is False:
            reply = Reply(text=reply.text, done_reason=reply.done_reason)
        reply = apply_budget(reply, req.num_predict)
        final = {
            "done": True,
            "done_reason": reply.done_reason,
            "prompt_eval_count": prompt_tokens,
            "eval_count": count_tokens(reply.thinking) + count_tokens(reply.text),
            "total_duration": time.perf_counter_ns() - t0,
            "load_duration": 0,
            "prompt_eval_duration": 0,
            "eval_duration": time.perf_counter_ns() - t0,
        }
        if reply.error:  # a failure after the answer began: mid-stream error line, or a 500 when not streaming
            if not req.stream:
                return Response.json({"error": reply.error}, 500)
            parts = [self._part(req, chat, piece, "") for piece in pieces(reply.text)]
            return Response(200, ndjson([*parts, {"error": reply.error}]), "application/x-ndjson")
        if not req.stream:
            return Response.json({**self._part(req, chat, reply.text, reply.thinking), **final})
        return Response(200, ndjson(self._chunks(req, chat, reply, final)), "application/x-ndjson")

    @staticmethod
    def _part(req: Request, chat: bool, text: str, thinking: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            return {"model": req.model, "created_at": now, "message": message, "done": False}
        out: dict[str, Any] = {"model": req.model, "created_at": now, "response": text, "done": False}
        if thinking:
            out["thinking"] = thinking
        return out

    def _chunks(self, req: Request, chat: bool, reply: Reply, final: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for piece in pieces(reply.thinking):
            yield self._part(req, chat, "", piece)
        for piece in pieces(reply.text):
            yield self._part(req, chat, piece, "")
        yield {**self._part(req, chat, "", ""), **final}
