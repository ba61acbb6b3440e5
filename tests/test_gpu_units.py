"""The fine-tuning path's pure parts: params, data, the GGUF tensor layout, FLOPs, model specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu.data import DataError, Dataset, batches, parse_line, read_dataset, split, subset
from gpu.flops import StepFlops, gpu_peak, mfu
from gpu.params import ParamsError, parse_params
from gpu.paths import adapter_file, experiments_dir, split_spec, with_adapter


def test_params_take_the_seed_trainers_names_and_turn_epochs_into_steps() -> None:
    p = parse_params({"epochs": 5, "learning_rate": 5e-5, "lora_rank": 16, "batch_size": 4}, n_train=15)
    assert (p.steps, p.lr, p.rank) == (20, 5e-5, 16)
    assert parse_params({"epochs": 5, "steps": 7}, n_train=15).steps == 7  # an explicit budget wins
    assert parse_params({"targets": "q_proj, v_proj"}).targets == ("q_proj", "v_proj")


@pytest.mark.parametrize(("raw", "words"), [
    ({"ranks": 8}, "ranks: unknown training parameter"),
    ({"lr": "fast"}, "lr: 'fast' is not a number"),
    ({"steps": 2.5}, "must be a whole number"),
    ({"rank": 0}, "rank: 0 is out of range"),
    ({"targets": ["q_proj", "lm_head"]}, "targets"),
    ({"subset": 1.5}, "subset"),
])
def test_bad_params_are_one_line_errors(raw: dict[str, object], words: str) -> None:
    with pytest.raises(ParamsError, match=words):
        parse_params(raw)


def test_both_line_shapes_become_chat_examples() -> None:
    a = parse_line(json.dumps({"prompt": "p", "completion": "c"}), "d.jsonl:1")
    b = parse_line(json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                            {"role": "assistant", "content": "x"}]}), "d.jsonl:2")
    assert a is not None and b is not None
    assert a.prompt == [{"role": "user", "content": "p"}] and a.target == "c"
    assert [m["role"] for m in b.prompt] == ["system", "user"] and b.target == "x"
    assert parse_line("   ", "d.jsonl:3") is None


@pytest.mark.parametrize(("line", "words"), [
    ("{not json", "d.jsonl:4: not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"prompt": "p"}', "field 'completion' missing"),
    ('{"prompt": "p", "completion": "  "}', "field 'completion' is empty"),
    ('{"messages": [{"role": "user", "content": "u"}, {"role": "user", "content": "v"}]}',
     "last message must be a non-empty assistant"),
    ('{"messages": [{"role": "robot", "content": "u"}, {"role": "assistant", "content": "v"}]}', "messages\\[0\\]"),
])
def test_malformed_lines_name_file_line_and_fix(line: str, words: str) -> None:
    with pytest.raises(DataError, match=words):
        parse_line(line, "d.jsonl:4")


def _dataset(tmp_path: Path, n: int) -> Dataset:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n"
                                              for i in range(n)))
    return read_dataset(tmp_path, ["d.jsonl"])


def test_held_out_split_depends_on_the_data_only(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, 10)
    train, held = split(ds, 0.2)
    assert len(held) == 2 and len(train) == 8 and not {e.key for e in train} & {e.key for e in held}
    reordered = Dataset(tuple(reversed(ds.examples)), ds.files)
    assert {e.key for e in split(reordered, 0.2)[1]} == {e.key for e in held}
    assert len(split(_dataset(tmp_path, 2), 0.2)[1]) == 1  # two examples: one is held out
    assert len(subset(train, 0.5, seed=1)) == 4 and subset(train, 1.0, seed=1) == train


def test_batches_are_seeded_epochs_that_cover_every_example() -> None:
    b = batches(5, 2, 5, seed=3)
    assert b == batches(5, 2, 5, seed=3) and b != batches(5, 2, 5, seed=4)
    flat = [i for step in b for i in step]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4]  # the first epoch sees each example once


def test_dataset_hash_is_the_content_not_the_name(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, 3)
    (tmp_path / "e.jsonl").write_text((tmp_path / "d.jsonl").read_text())
    assert read_dataset(tmp_path, ["e.jsonl"]).hash == ds.hash
    with pytest.raises(DataError, match="no examples"):
        (tmp_path / "empty.jsonl").write_text("\n")
        read_dataset(tmp_path, ["empty.jsonl"])


def test_model_specs_name_adapters() -> None:
    assert split_spec("smollm2-135m+lora:planner-lora-1") == ("smollm2-135m", "planner-lora-1")
    assert split_spec("smollm2-135m") == ("smollm2-135m", None)
    assert with_adapter("embedded:smollm2-135m+lora:old", "new") == "embedded:smollm2-135m+lora:new"
    assert adapter_file(Path("/x"), "k") == Path("/x/k/adapter.gguf")
    assert adapter_file(None, "/a/b.gguf") == Path("/a/b.gguf")
    with pytest.raises(FileNotFoundError):
        adapter_file(None, "k")


def test_experiments_folder_follows_the_store(tmp_path: Path) -> None:
    cfg = tmp_path / "vault.yml"
    assert experiments_dir(cfg, f"sqlite:///{tmp_path}/s/events.db", {}) == tmp_path / "s" / "experiments"
    assert experiments_dir(cfg, "postgresql+psycopg://u@h/db", {}) == tmp_path / ".autovault" / "experiments"
    assert experiments_dir(cfg, "sqlite:///x.db", {"AUTOVAULT_EXPERIMENTS": "/e"}) == Path("/e")


def test_lora_step_flops_and_peaks() -> None:
    f = StepFlops(frozen_params=100, lora_params=10, layers=2, hidden=4)
    assert f.per_token(seq_len=8) == 4 * 100 + 6 * 10 + 12 * 2 * 8 * 4
    assert f.per_step(tokens=3, seq_len=8) == 3 * f.per_token(8)
    assert gpu_peak("NVIDIA H100 80GB HBM3") == 756.0 and gpu_peak("NVIDIA H100 SXM5") == 989.4
    assert gpu_peak("NVIDIA H200") == 989.4 and gpu_peak("Mystery GPU") is None
    assert gpu_peak("anything", {"AUTOVAULT_PEAK_TFLOPS": "100"}) == 100.0
    assert mfu(40e12, 100.0) == pytest.approx(0.4) and mfu(1.0, None) is None
