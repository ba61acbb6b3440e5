"""`make demo`'s vault.yml: the example config with the deterministic profile, comments kept, and a plan that
verifies on the configured 3 inputs once the A/A comparison shows no spread (a sampling or LLM-judged
config would need 24)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from adapters.config_loader import load_config
from handlers.verify import plan_for

REPO = Path(__file__).resolve().parent.parent


def _profile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_profile", REPO / "examples" / "demo_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_config_is_the_example_with_the_profile_and_validates(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "seed-vault", tmp_path / "vault")
    assert _profile().main([str(REPO / "vault.yml"), str(tmp_path / "vault.yml")]) == 0
    text = (tmp_path / "vault.yml").read_text()
    assert "# room for output-judge once its collector is fixed" in text  # comments survive the edits
    demo, example = load_config(tmp_path / "vault.yml", {}), load_config(REPO / "vault.yml", {})
    assert demo.root == (tmp_path / "vault").resolve() and demo.store == f"sqlite:///{tmp_path / 'events.db'}"
    assert (demo.backends.embedded.temperature, demo.backends.embedded.repeat_penalty) == (0, 1.15)
    assert demo.judge.llm_weight == 0
    assert demo.tasks == example.tasks and demo.research == example.research

    _, quiet = plan_for(demo, seed=1, floor=0.0)
    _, noisy = plan_for(example, seed=1, floor=0.0)
    assert (quiet.start, quiet.cap) == (example.research.samples, example.research.max_samples) == (3, 9)
    assert noisy.start == 24  # the example's LLM judge: the measured noise-safe design


def test_demo_config_that_does_not_validate_is_one_line(tmp_path: Path, capsys: object) -> None:
    assert _profile().main([str(REPO / "vault.yml"), str(tmp_path / "vault.yml")]) == 1  # no vault copied
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "vault folder 'vault' does not exist" in err
