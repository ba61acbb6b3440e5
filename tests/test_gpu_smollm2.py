"""The real model: SmolLM2-135M from its GGUF in torch against llama.cpp, and one train → export → verify round
through the CLI. Slow (model loads); kept to two tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("gguf")
pytestmark = [pytest.mark.embedded, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One experiments folder for the module: the dequantized base is cached there once."""
    return tmp_path_factory.mktemp("experiments")


def test_torch_model_matches_llama_cpp_and_the_adapter_export_is_permuted_right(tmp_path: Path,
                                                                                experiments: Path) -> None:
    import torch

    from gpu import gguf_lora, parity
    from gpu.base_model import gguf_for, load_base
    from gpu.lora import adapter_state, attach
    from gpu.params import parse_params

    torch.set_num_threads(2)
    gguf = gguf_for("embedded:smollm2-135m")
    base = load_base(gguf, experiments)
    text = (ROOT / "examples" / "seed-vault" / "data" / "deepener.jsonl").read_text()[:1500]
    prompt = [[{"role": "user", "content": "Name three colours."}]]
    plain = parity.compare(base.model, base.tokenizer, gguf, [text], [], max_tokens=128)
    assert plain.tokens_equal and plain.loss_gap < parity.LOSS_TOLERANCE and plain.torch_loss < 4.5

    model = attach(base.model, parse_params({"rank": 4}), 0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # an adapter strong enough to move every logit
    state = adapter_state(model)
    right = gguf_lora.write_gguf_lora(tmp_path / "right.gguf", state, model.config, 8.0)
    ok = parity.compare(model, base.tokenizer, gguf, [text], prompt, adapter=right, max_tokens=128, new_tokens=8)
    assert ok.ok, ok.why()
    saved = dict(gguf_lora.PERMUTED)
    gguf_lora.PERMUTED.clear()  # the mistake the permutation exists to prevent
    try:
        wrong = gguf_lora.write_gguf_lora(tmp_path / "wrong.gguf", state, model.config, 8.0)
    finally:
        gguf_lora.PERMUTED.update(saved)
    bad = parity.compare(model, base.tokenizer, gguf, [text], [], adapter=wrong, max_tokens=128)
    assert bad.loss_gap > 3 * ok.loss_gap


def test_train_export_verify_round_through_the_cli(tmp_path: Path, experiments: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from adapters.backends.embedded import EmbeddedBackend
    from daemon.cli import main
    from tests.gpu_vault import make_vault

    monkeypatch.setenv("AUTOVAULT_EXPERIMENTS", str(experiments))  # the base cached by the test above
    cfg = make_vault(tmp_path, steps=2)
    before = cfg.read_text()
    assert main(["--config", str(cfg), "--json", "train", "planner"]) == 0
    out = json.loads(capsys.readouterr().out)
    key, row = out["experiment"], out["row"]
    assert out["outcome"] == "finished" and row["phase"] in ("kept", "discarded")
    assert row["metrics"]["export_parity"]["tokens_equal"] and row["metrics"]["export_parity"]["loss_gap"] < 0.05
    assert [s for s, _ in row["losses"]] == [1, 2] and row["cycle"] == out["cycle"]["key"]
    folder = Path(out["artifacts"])
    assert (folder / "adapter.gguf").is_file() and "ADAPTER ./adapter.gguf" in (folder / "Modelfile").read_text()
    if row["phase"] == "kept":
        assert f"embedded:smollm2-135m+lora:{key}" in cfg.read_text()
    else:
        assert cfg.read_text() == before  # a discarded adapter never touches vault.yml
    backend = EmbeddedBackend(experiments=folder.parent, n_ctx=512, temperature=0)
    done = backend.complete(f"smollm2-135m+lora:{key}", "Are there unplanned goals?", {"num_predict": 4})
    assert done.model == f"embedded:smollm2-135m+lora:{key}" and done.output_tokens > 0
    assert main(["--config", str(cfg), "experiments", key]) == 0
    assert key in capsys.readouterr().out
