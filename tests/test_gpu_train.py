"""LoRA training, checkpoints, GGUF layout and merges on a tiny random Llama (milliseconds a step)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gpu.data import batches  # noqa: E402
from gpu.encode import IGNORE, Encoded  # noqa: E402
from gpu.gguf_lora import gguf_tensors, permute_rows, write_gguf_lora  # noqa: E402
from gpu.lora import StepSummary, adapter_state, attach, train  # noqa: E402
from gpu.merge import MergeError, merged_model  # noqa: E402
from gpu.params import parse_params  # noqa: E402


def tiny_llama(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=True)
    return transformers.LlamaForCausalLM(cfg).eval()


def data(n: int = 6) -> list[Encoded]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, 64) for _ in range(12)]
        out.append(Encoded(ids, [IGNORE] * 6 + ids[6:]))
    return out


PARAMS = {"steps": 6, "rank": 4, "alpha": 8, "lr": 0.01, "batch_size": 2, "log_every": 2, "checkpoint_every": 3,
          "warmup": 1}


def run(tmp: Path | None, stop_at: int | None = None, seed: int = 0) -> tuple[Any, list[StepSummary], list[int]]:
    params = parse_params(PARAMS)
    model = attach(tiny_llama(), params, seed)
    summaries: list[StepSummary] = []
    checkpoints: list[int] = []

    def on_step(s: StepSummary) -> None:
        summaries.append(s)
        if stop_at is not None and s.step >= stop_at:
            raise KeyboardInterrupt  # the process dies here: a crash between two checkpoints

    train(model, data(), batches(6, params.batch_size, params.steps, seed), params, pad=0, checkpoint_dir=tmp,
          on_step=on_step, on_checkpoint=lambda n, _h: checkpoints.append(n))
    return model, summaries, checkpoints


def test_training_lowers_the_loss_and_is_a_function_of_the_seed() -> None:
    a, sa, _ = run(None)
    b, _, _ = run(None)
    c, _, _ = run(None, seed=1)
    assert sa[-1].loss < sa[0].loss
    assert [s.step for s in sa] == [2, 4, 6] and all(s.tokens > 0 for s in sa)
    same = all(torch.equal(x, y) for x, y in zip(adapter_state(a).values(), adapter_state(b).values(), strict=True))
    other = all(torch.equal(x, y) for x, y in zip(adapter_state(a).values(), adapter_state(c).values(), strict=True))
    assert same and not other


def test_a_crashed_run_resumes_from_its_checkpoint_to_the_same_adapter(tmp_path: Path) -> None:
    whole, _, _ = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, stop_at=4)  # checkpoint at 3, crash after step 4
    resumed, summaries, checkpoints = run(tmp_path)
    assert [s.step for s in summaries] == [4, 6]  # steps 4..6 ran again, from the checkpoint at 3
    assert checkpoints == []  # nothing left to checkpoint before the end
    for x, y in zip(adapter_state(whole).values(), adapter_state(resumed).values(), strict=True):
        assert torch.equal(x, y)


def test_gguf_tensors_use_llama_cpp_names_shapes_and_the_rotary_permutation() -> None:
    params = parse_params({"rank": 4, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]})
    model = attach(tiny_llama(), params, 0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    state = adapter_state(model)
    tensors = gguf_tensors(state, model.config)
    assert set(tensors) == {f"blk.{i}.attn_{m}.weight.lora_{ab}" for i in range(2) for m in ("q", "k", "v", "output")
                            for ab in ("a", "b")}
    assert tensors["blk.0.attn_q.weight.lora_a"].shape == (4, 32)  # rank × in
    assert tensors["blk.0.attn_k.weight.lora_b"].shape == (16, 4)  # out (2 kv heads × 8) × rank
    b_q = state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].numpy()
    b_v = state["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].numpy()
    assert (tensors["blk.0.attn_q.weight.lora_b"] == permute_rows(b_q, 4)).all()
    assert not (tensors["blk.0.attn_q.weight.lora_b"] == b_q).all()  # q and k are permuted ...
    assert (tensors["blk.0.attn_v.weight.lora_b"] == b_v).all()  # ... v is not


def test_the_permutation_is_llama_cpps_interleave_of_rotary_halves() -> None:
    import numpy as np

    rows = np.arange(8, dtype=np.float32).reshape(8, 1)  # one head of 8 dims: halves [0..3] and [4..7]
    assert permute_rows(rows, 1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_the_gguf_file_reads_back_as_a_lora_adapter(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    model = attach(tiny_llama(), parse_params({"rank": 4, "alpha": 12}), 0)
    path = write_gguf_lora(tmp_path / "a.gguf", adapter_state(model), model.config, 12.0, name="exp-1")
    reader = gguf.GGUFReader(str(path))
    fields = {k: v for k, v in reader.fields.items()}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 12.0
    assert len(reader.tensors) == 2 * 2 * 4
    assert not list(tmp_path.glob(".*tmp"))  # written atomically: no temp file left


def test_ties_merge_of_two_adapters_with_a_density(tmp_path: Path) -> None:
    dirs = []
    for seed in (0, 1):
        model, _, _ = run(None, seed=seed)
        model.save_pretrained(tmp_path / f"a{seed}")
        dirs.append(str(tmp_path / f"a{seed}"))
    merged = merged_model(tiny_llama(), dirs, [1.0, 1.0], "ties", 0.5, seed=0)
    assert merged.active_adapter == "merged" and set(merged.peft_config) == {"merged"}
    b = adapter_state(merged)
    assert any(float(v.abs().sum()) > 0 for v in b.values())
    dense = merged_model(tiny_llama(), dirs, [1.0, 1.0], "ties", 1.0, seed=0)
    sparse_zeros = sum(int((v == 0).sum()) for v in b.values())
    dense_zeros = sum(int((v == 0).sum()) for v in adapter_state(dense).values())
    assert sparse_zeros > dense_zeros  # density 0.5 keeps fewer weights
    with pytest.raises(MergeError, match="at least two"):
        merged_model(tiny_llama(), dirs[:1], [1.0], "ties", 0.5, seed=0)
