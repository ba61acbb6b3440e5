"""The protocol-neutral request a responder sees and the reply it gives back.

Tokens in these doubles are whitespace-separated words: easy to reason about in tests ("num_predict=5
gives exactly 5 words") and the same unit the flawed models use. Thinking spends the budget first, as on
Ollama, so a thinking model with a small num_predict answers nothing and reports "length".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Request:
    """What the model was asked, whatever the protocol."""

    model: str
    messages: list[dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)  # num_predict, num_ctx, temperature, top_p, seed
    think: bool | None = None
    json_schema: dict[str, Any] | None = None  # Ollama `format`, Anthropic forced tool, OpenAI response_format
    stream: bool = False
    protocol: str = ""  # "ollama" | "anthropic" | "openai"
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the request body as sent

    @property
    def prompt(self) -> str:
        """Every message's text, system first, as one string."""
        return "\n\n".join(m["content"] for m in self.messages)

    @property
    def num_predict(self) -> int | None:
        value = self.options.get("num_predict")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class Reply:
    """What the model would say with no budget. A `status` other than 200 makes the server answer an error."""

    text: str = ""
    thinking: str = ""
    status: int = 200
    error: str = ""
    done_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. retry-after-ms)


Responder = Callable[[Request], Reply]


def count_tokens(text: str) -> int:
    return len(_WORD.findall(text))


def cut_words(text: str, n: int) -> str:
    """The first n words of text with their original spacing; nothing after the n-th word."""
    if n <= 0:
        return ""
    for i, match in enumerate(_WORD.finditer(text), start=1):
        if i == n:
            return text[: match.end()]
    return text


def apply_budget(reply: Reply, num_predict: int | None) -> Reply:
    """Truncate thinking then text at exactly num_predict tokens; done_reason "length" when cut."""
    if num_predict is None or reply.status != 200:
        return reply
    thinking_tokens = count_tokens(reply.thinking)
    if thinking_tokens >= num_predict:
        cut = thinking_tokens > num_predict or bool(count_tokens(reply.text))
        return replace(
            reply,
            thinking=cut_words(reply.thinking, num_predict),
            text="",
            done_reason="length" if cut else reply.done_reason,
        )
    room = num_predict - thinking_tokens
    if count_tokens(reply.text) > room:
        return replace(reply, text=cut_words(reply.text, room), done_reason="length")
    return reply


def fit_context(messages: list[dict[str, str]], num_ctx: int) -> tuple[list[dict[str, str]], int]:
    """Ollama's handling of an over-long prompt: keep its last num_ctx tokens, report num_ctx as evaluated.
    The instructions at the top are what gets lost, which is why the output then misses its format."""
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    if prompt_tokens <= num_ctx:
        return messages, prompt_tokens
    joined = "\n\n".join(m["content"] for m in messages)
    tail = joined[len(joined) - len(cut_words(joined[::-1], num_ctx)) :]
    return [{"role": "user", "content": tail}], num_ctx


def echo(request: Request) -> Reply:
    """The default responder: a short, predictable answer naming the model and the last user turn."""
    last = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
    return Reply(text=f"{request.model} answers: {last}")
