"""A peft LoRA adapter → a GGUF LoRA file llama.cpp loads (`Llama(lora_path=…)`), and an Ollama Modelfile.

Written with the `gguf` package's writer and its tensor-name map (HF `model.layers.3.self_attn.q_proj` →
GGUF `blk.3.attn_q`), in the layout llama.cpp's own converter produces:
- `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (llama.cpp scales by alpha / rank);
- per adapted weight `<gguf name>.weight.lora_a` (rank × in) and `.lora_b` (out × rank), fp32;
- the query and key projections permuted as llama.cpp permutes the base weights for its rotary layout: GGUF
  stores q/k rows interleaved per head, transformers un-permutes them on load, so the adapter's B (its rows are
  the output dimension) must be permuted back, or the adapter lands on the wrong rotary pairs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
PERMUTED = {"q_proj": "num_attention_heads", "k_proj": "num_key_value_heads"}


class ExportError(RuntimeError):
    """The adapter cannot be written as GGUF (an unsupported architecture or tensor); the message says why."""


def permute_rows(b: Any, n_head: int) -> Any:
    """llama.cpp's q/k permutation applied to the output rows of B: (n_head, 2, d/2) → (n_head, d/2, 2)."""
    out, rank = b.shape
    return b.reshape(n_head, 2, out // n_head // 2, rank).swapaxes(1, 2).reshape(out, rank)


def gguf_tensors(state: dict[str, Any], config: Any) -> dict[str, Any]:
    """peft state dict (torch tensors) → {gguf tensor name: fp32 numpy array}."""
    import gguf

    arch = _arch(config)
    names = gguf.get_tensor_name_map(arch, int(config.num_hidden_layers))
    out: dict[str, Any] = {}
    for key, tensor in sorted(state.items()):
        m = PEFT_KEY.match(key)
        if m is None:
            raise ExportError(f"adapter tensor {key!r} is not a LoRA A/B weight; only LoRA adapters are exported")
        module, ab = m.group("module"), m.group("ab")
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise ExportError(f"adapter tensor {key!r}: no GGUF name for {module!r} in the {config.model_type} map")
        array = tensor.detach().float().cpu().numpy()
        short = module.rsplit(".", 1)[-1]
        if ab == "B" and short in PERMUTED and arch == gguf.MODEL_ARCH.LLAMA:
            array = permute_rows(array, int(getattr(config, PERMUTED[short])))
        out[f"{target}.lora_{ab.lower()}"] = array.copy()
    return out


def _arch(config: Any) -> Any:
    import gguf

    kind = str(getattr(config, "model_type", ""))
    if kind not in ("llama", "mistral"):
        raise ExportError(f"GGUF export supports llama-architecture models, not {kind!r}")
    return gguf.MODEL_ARCH.LLAMA


def write_gguf_lora(path: Path, state: dict[str, Any], config: Any, alpha: float, *, name: str = "") -> Path:
    """Write the adapter atomically (temp file, fsync, rename) to `path`."""
    import os

    import gguf

    tensors = gguf_tensors(state, config)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[_arch(config)])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def modelfile(base_gguf: Path, adapter: str, *, params: dict[str, Any] | None = None) -> str:
    """An Ollama Modelfile: the base GGUF, the adapter beside the Modelfile, sampling defaults."""
    lines = [f"FROM {base_gguf}", f"ADAPTER ./{adapter}"]
    lines += [f"PARAMETER {k} {v}" for k, v in (params or {}).items()]
    return "\n".join(lines) + "\n"


__all__ = ["ExportError", "gguf_tensors", "modelfile", "permute_rows", "write_gguf_lora"]
