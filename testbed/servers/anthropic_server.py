"""Anthropic's Messages API: POST /v1/messages, plain JSON or SSE, text or forced tool use, errors.

The key may arrive as `x-api-key` or `Authorization: Bearer` (client versions differ). With `api_key`
set, anything else gets the real 401 body. `requests` keeps every request so a test can check that the
key went only where it belongs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from testbed.servers.loopback import LoopbackServer, Recorded, Response, sse
from testbed.servers.ollama_server import pieces
from testbed.servers.protocol import Reply, Request, Responder, apply_budget, count_tokens, echo

TEST_KEY = "sk-ant-test-0123456789abcdef-SECRET"  # what the `anthropic_server` fixture expects
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def sent_key(rec: Recorded) -> str | None:
    if rec.headers.get("x-api-key"):
        return rec.headers["x-api-key"]
    auth = rec.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    return Response.json(body, status, {"request-id": f"req_{uuid.uuid4().hex[:12]}", **(headers or {})})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


class AnthropicServer(LoopbackServer):
    """`AnthropicServer(responder, api_key="sk-test")`."""

    def __init__(self, responder: Responder = echo, *, api_key: str | None = None) -> None:
        super().__init__()
        self.responder = responder
        self.api_key = api_key
        self.route("POST", "/v1/messages", self._messages)
        self.route("POST", "/v1/messages/count_tokens", self._count_tokens)

    def request_of(self, rec: Recorded) -> Request:
        body = rec.json()
        system = body.get("system")
        system_text = _text_of(system) if system else ""
        messages = ([{"role": "system", "content": system_text}] if system_text else []) + [
            {"role": m.get("role", "user"), "content": _text_of(m.get("content"))} for m in body.get("messages") or []
        ]
        tool = _forced_tool(body)
        options = {k: body[k] for k in ("temperature", "top_p") if k in body}
        options["num_predict"] = int(body.get("max_tokens") or 0)
        return Request(
            model=str(body.get("model") or ""),
            messages=messages,
            options=options,
            json_schema=tool.get("input_schema") if tool else None,
            stream=bool(body.get("stream")),
            protocol="anthropic",
            path=rec.path,
            raw=body,
        )

    def _count_tokens(self, rec: Recorded) -> Response:
        if self.api_key is not None and sent_key(rec) != self.api_key:
            return error_response(401, "invalid x-api-key")
        return Response.json({"input_tokens": count_tokens(self.request_of(rec).prompt)})

    def _messages(self, rec: Recorded) -> Response:
        if self.api_key is not None and sent_key(rec) != self.api_key:
            return error_response(401, "invalid x-api-key")
        req = self.request_of(rec)
        reply = self.responder(req)
        if reply.status != 200:
            return error_response(reply.status, reply.error or "error", reply.headers)
        reply = apply_budget(Reply(text=reply.text), req.num_predict)
        tool = _forced_tool(req.raw)
        stop = "max_tokens" if reply.done_reason == "length" else ("tool_use" if tool else "end_turn")
        if tool:
            try:
                answer = json.loads(reply.text) if stop != "max_tokens" else {}
            except ValueError:
                answer = {"text": reply.text}
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:12]}",
                "name": tool["name"],
                "input": answer,
            }
        else:
            block = {"type": "text", "text": reply.text}
        message = {
            "id": f"msg_{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": count_tokens(req.prompt), "output_tokens": count_tokens(reply.text)},
        }
        if not req.stream:
            return Response.json(message)
        return Response(200, sse(self._events(message, reply.text)), "text/event-stream")

    @staticmethod
    def _events(message: dict[str, Any], text: str) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
        block = message["content"][0]
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}
        yield "message_start", {"type": "message_start", "message": start}
        if block["type"] == "text":
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            for piece in pieces(text):
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
        else:
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}},
            )
            data = json.dumps(block["input"])
            for i in range(0, len(data), 16):
                delta = {"type": "input_json_delta", "partial_json": data[i : i + 16]}
                yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        end: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield (
            "message_delta",
            {"type": "message_delta", "delta": end, "usage": {"output_tokens": usage["output_tokens"]}},
        )
        yield "message_stop", {"type": "message_stop"}


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool":
        return None
    return next((t for t in body.get("tools") or [] if t.get("name") == choice.get("name")), None)
