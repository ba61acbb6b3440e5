"""`check` warns about what still runs but will hurt: retiring Anthropic models, passwords kept in history."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.backends.retirement import CURRENT_DEFAULT, anthropic_models, retiring
from daemon.cli import main
from domain.config import AnthropicBackend

VAULT_YML = """\
vault: vault
backends:
  anthropic: {{model: {model}, api_key_env: ANTHROPIC_API_KEY}}
tasks:
  brief:
    prompt: prompts/brief.md
    model: {task_model}
"""


def _vault(tmp_path: Path, model: str, task_model: str) -> Path:
    (tmp_path / "vault/prompts").mkdir(parents=True)
    (tmp_path / "vault/prompts/brief.md").write_text("Write a brief.\n")
    cfg = tmp_path / "vault.yml"
    cfg.write_text(VAULT_YML.format(model=model, task_model=task_model))
    return cfg


def test_default_model_is_not_retiring() -> None:
    assert AnthropicBackend().model == CURRENT_DEFAULT
    assert retiring([CURRENT_DEFAULT]) == {}


def test_a_retired_model_is_known_to_the_client() -> None:
    assert "claude-sonnet-4-5" in retiring(["claude-sonnet-4-5", CURRENT_DEFAULT])


def test_anthropic_models_reads_specs_and_the_default() -> None:
    specs = ["ollama:qwen3:8b", "anthropic:claude-opus-4-5", None, "embedded:smollm2-135m"]
    assert anthropic_models(specs, CURRENT_DEFAULT) == sorted(["claude-opus-4-5", CURRENT_DEFAULT])


@pytest.mark.parametrize(("model", "task_model", "warned"), [
    ("claude-sonnet-4-5", "embedded:smollm2-135m", "claude-sonnet-4-5"),
    (CURRENT_DEFAULT, "anthropic:claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
])
def test_check_warns_and_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str,
                                        task_model: str, warned: str) -> None:
    cfg = _vault(tmp_path, model, task_model)
    assert main(["--config", str(cfg), "check"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert warned in err[0] and "end of life" in err[0] and f"e.g. {CURRENT_DEFAULT}" in err[0]


def test_check_is_quiet_on_current_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _vault(tmp_path, CURRENT_DEFAULT, "embedded:smollm2-135m")
    assert main(["--config", str(cfg), "check"]) == 0
    assert capsys.readouterr().err == ""


def test_check_warns_about_a_password_in_vault_yml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _vault(tmp_path, CURRENT_DEFAULT, "embedded:smollm2-135m")
    cfg.write_text(cfg.read_text() + "store: postgresql+psycopg://vault:s3cret@db.example/vault\n")
    assert main(["--config", str(cfg), "check"]) == 0
    err = capsys.readouterr().err
    assert "vault.yml:8: warning: a URL carries a password" in err and "s3cret" not in err
