"""Helpers every backend shares: prompt-to-messages, token estimates, option picking, secret scrubbing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from adapters.backends.base import Message


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A bare prompt is one user turn; a message list passes through as plain dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """Anthropic takes the system prompt beside the turns, not as one of them."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def estimate_tokens(text: str | None) -> int:
    """Servers that don't count a part (Ollama's `thinking`) get an estimate: the larger of the
    whitespace word count and one token per 4 characters — a deliberate over-estimate for prose, because a
    thinking burn that is under-counted hides the fault the signature looks for."""
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / 4))


def pick(options: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The options a backend understands, without the unset ones."""
    return {k: options[k] for k in keys if options.get(k) is not None}


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret from text that may reach an exception or a log line."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text
