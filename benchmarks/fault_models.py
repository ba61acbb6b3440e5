"""The fault benchmark's model double: `testbed.doubles.FlawedModels` (the behaviour spec of flawed small models,
read its docstring) behind an Ollama-protocol server whose context window is measured like a real tokenizer's.

The loopback servers count a token per word, which is right for num_predict ("5 tokens = 5 words" keeps budget
tests readable) but generous for prompts: real tokenizers give about one token per 4 characters of English.
`FaultServer` therefore fits a prompt into num_ctx at `CHARS_PER_TOKEN` characters per token, keeps its tail
(Ollama's truncation: the front, where the instructions are, is lost), and reports that measure as
`prompt_eval_count` — clamped to num_ctx as Ollama does — so the product sees an overflow in the numbers as the
model suffers it in the text. `/api/show` reports each model's context length (`Traits.context_length`) the way
Ollama's `model_info` does, and `/api/tags` lists the models the double serves; any other name gets Ollama's 404.

`FaultModels` is the same responder for the plain `OllamaServer`: it applies the character window itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from testbed.doubles.flawed_models import MODELS, FlawedModels, Traits, traits_of
from testbed.servers.loopback import Recorded, Response
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply, Request

CHARS_PER_TOKEN = 4
DEFAULT_NUM_CTX = 4096
SERVED = (*MODELS, "qwen3:8b", "qwen3:4b", "deepseek-r1:8b", "qwen2.5:7b", "qwen2.5-coder:14b", "starcoder2:3b",
          "codegemma:7b", "deepseek-coder:6.7b")


def window_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def fit(messages: list[dict[str, str]], num_ctx: int) -> tuple[list[dict[str, str]], int]:
    """The prompt as the model holds it: its last num_ctx tokens, and the tokens it reports."""
    joined = "\n\n".join(m["content"] for m in messages)
    limit = num_ctx * CHARS_PER_TOKEN
    if len(joined) <= limit:
        return messages, window_tokens(joined)
    return [{"role": "user", "content": joined[-limit:]}], num_ctx


def overflowed(request: Request) -> Request:
    """The request as the model sees it when its prompt overflows num_ctx at 4 characters per token."""
    messages, _ = fit(request.messages, int(request.options.get("num_ctx") or DEFAULT_NUM_CTX))
    return request if messages is request.messages else dataclasses.replace(request, messages=messages)


class FaultModels(FlawedModels):
    """`OllamaServer(FaultModels(seed=0))`: FlawedModels seeing only what fits the character window."""

    def __call__(self, request: Request) -> Reply:
        return super().__call__(overflowed(request))


class FaultServer(OllamaServer):
    """`FaultServer(FlawedModels(seed=0))`: the loopback Ollama server with a character-measured window."""

    def __init__(self, responder: FlawedModels | None = None, *, models: list[str] | None = None) -> None:
        self.double = responder or FlawedModels(seed=0)
        names = sorted({*SERVED, *self.double.models}) if models is None else models
        super().__init__(self.double, models=names, num_ctx=DEFAULT_NUM_CTX)

    def request_of(self, rec: Recorded, chat: bool) -> tuple[Request, int]:
        req, _ = super().request_of(rec, chat)
        original = self._original_messages(rec, chat)
        num_ctx = int(req.options.get("num_ctx") or self.num_ctx)
        messages, tokens = fit(original, num_ctx)
        return dataclasses.replace(req, messages=messages), tokens

    @staticmethod
    def _original_messages(rec: Recorded, chat: bool) -> list[dict[str, str]]:
        body = rec.json()
        if chat:
            return [{"role": m.get("role", "user"), "content": m.get("content") or ""}
                    for m in body.get("messages") or []]
        system = [{"role": "system", "content": body["system"]}] if body.get("system") else []
        return [*system, {"role": "user", "content": body.get("prompt") or ""}]

    def _show(self, rec: Recorded) -> Response:
        model = str(rec.json().get("model") or rec.json().get("name") or "")
        missing = self._missing(model)
        if missing:
            return missing
        traits: Traits = traits_of(model, self.double.models)
        family = model.split(":", 1)[0]
        info: dict[str, Any] = {"general.architecture": family, f"{family}.context_length": traits.context_length}
        return Response.json({"modelfile": "", "parameters": f"num_ctx {DEFAULT_NUM_CTX}",
                              "details": {"family": family}, "model_info": info})


__all__ = ["CHARS_PER_TOKEN", "FaultModels", "FaultServer", "fit", "overflowed", "window_tokens"]
