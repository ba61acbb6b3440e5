"""Ollama through the official client: chat endpoint, streamed by default, timeouts always set.

Streaming is the default because the client's timeout bounds the silence between chunks, not the whole
generation: a slow 4k-token answer still finishes while a dead server fails fast.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import ollama

from adapters.backends.base import BackendError, ContextWindow, Health, Message
from adapters.backends.messages import as_messages, estimate_tokens, pick
from domain.runs import Completion

OPTION_KEYS = ("num_predict", "num_ctx", "temperature", "top_p", "repeat_penalty", "seed")
DEFAULT_NUM_CTX = 4096  # Ollama's window when neither the call nor the Modelfile sets num_ctx
PROBE_TIMEOUT_S = 5.0


def normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"http://{host}"


class OllamaBackend:
    """`ollama:<model>` — eval_count includes thinking tokens on Ollama; thinking_tokens is an estimate."""

    def __init__(self, host: str, timeout: float, *, stream: bool = True, keep_alive: str | None = None) -> None:
        self.host = normalise_host(host)
        self.timeout = timeout
        self.stream = stream
        self.keep_alive = keep_alive
        self._client = ollama.Client(host=self.host, timeout=timeout)
        self._probe_client = ollama.Client(host=self.host, timeout=min(timeout, PROBE_TIMEOUT_S))

    def __repr__(self) -> str:
        return f"OllamaBackend(host={self.host!r}, timeout={self.timeout})"

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        request: dict[str, Any] = {
            "model": model,
            "messages": as_messages(prompt),
            "options": pick(options, OPTION_KEYS),
            "format": json_schema,
            "think": options.get("think"),
            "keep_alive": self.keep_alive,
        }
        t0 = time.perf_counter()
        try:
            text, thinking, final = self._stream(request) if self.stream else self._once(request)
        except ollama.ResponseError as e:
            raise BackendError(self._explain(e, model)) from None
        except (ConnectionError, httpx.TransportError) as e:
            raise BackendError(self._unreachable(e)) from None
        return Completion(
            text=text,
            done_reason=final.done_reason or "stop",
            prompt_tokens=final.prompt_eval_count or 0,
            output_tokens=final.eval_count or 0,
            thinking_tokens=estimate_tokens(thinking),
            duration_s=time.perf_counter() - t0,
            model=f"ollama:{model}",
        )

    def probe(self, model: str) -> Health:
        """POST /api/show: answers only when the server is up and has the model pulled."""
        try:
            self._probe_client.show(model)
        except ollama.ResponseError as e:
            return Health("down", self._explain(e, model), "POST /api/show")
        except (ConnectionError, httpx.TransportError) as e:
            return Health("down", self._unreachable(e), "POST /api/show")
        return Health("up", f"ollama at {self.host} has {model}", "POST /api/show")

    def context_window(self, model: str) -> ContextWindow:
        """The trained context length from /api/show's model_info; the default from the Modelfile's num_ctx."""
        try:
            shown = self._probe_client.show(model)
        except (ollama.ResponseError, ConnectionError, httpx.TransportError):
            return ContextWindow(DEFAULT_NUM_CTX, None, "Ollama's default num_ctx (the server did not answer)")
        info = dict(shown.modelinfo or {})
        trained = next((int(v) for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int)), None)
        default = DEFAULT_NUM_CTX
        for line in (shown.parameters or "").splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "num_ctx" and value.strip().isdigit():
                default = int(value.strip())
        source = f"ollama /api/show of {model}: " + (f"context_length {trained}" if trained else "no context_length")
        return ContextWindow(default, trained, source)

    def _once(self, request: dict[str, Any]) -> tuple[str, str, ollama.ChatResponse]:
        resp = self._client.chat(**request, stream=False)
        return resp.message.content or "", resp.message.thinking or "", resp

    def _stream(self, request: dict[str, Any]) -> tuple[str, str, ollama.ChatResponse]:
        text: list[str] = []
        thinking: list[str] = []
        final: ollama.ChatResponse | None = None
        for part in self._client.chat(**request, stream=True):
            text.append(part.message.content or "")
            thinking.append(part.message.thinking or "")
            if part.done:
                final = part
        if final is None:
            raise BackendError(f"ollama at {self.host} closed the stream for {request['model']!r} before `done`")
        return "".join(text), "".join(thinking), final

    def _explain(self, e: ollama.ResponseError, model: str) -> str:
        if e.status_code == 404:
            return f"ollama at {self.host} has no model {model!r}: run `ollama pull {model}` (server: {e.error})"
        if e.status_code == -1:
            return f"ollama at {self.host} failed while answering with {model!r}: {e.error}"
        return f"ollama at {self.host} answered HTTP {e.status_code} for {model!r}: {e.error}"

    def _unreachable(self, e: BaseException) -> str:
        what = f"timed out after {self.timeout:g}s" if isinstance(e, httpx.TimeoutException) else "unreachable"
        return (
            f"ollama at {self.host} {what} ({type(e).__name__}): is `ollama serve` running at {self.host}? "
            "set backends.ollama.host or AUTOVAULT_OLLAMA_HOST"
        )
