"""Malformed vault.yml files: each gives exactly the expected one-line problems, never a traceback.

Every case writes a tiny vault into tmp_path (the vault.yml text, the base files plus the case's own),
runs `check_config` from that folder and compares the printed problems line for line. `{root}` in an
expected line stands for the absolute vault root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.config_loader import ConfigError, check_config, load_config
from testbed.bad_configs import CASES, HEAD, write_case


def _lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> list[str]:
    monkeypatch.chdir(tmp_path)
    return [str(p) for p in check_config(Path("vault.yml"), env={} if env is None else env)]


def _assert_one_line_each(lines: list[str]) -> None:
    for line in lines:
        assert "\n" not in line and "Traceback" not in line, line
        assert " — fix: " in line, line


@pytest.mark.parametrize(("text", "files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, files: dict[str, str | None], expected: list[str]
) -> None:
    write_case(tmp_path, text, files)
    lines = _lines(tmp_path, monkeypatch)
    _assert_one_line_each(lines)
    assert len(lines) == len(expected), lines
    for got, want in zip(lines, expected, strict=True):
        want = want.replace("{root}", str(tmp_path / "vault")).replace("{base}", str(tmp_path))
        assert got.startswith(want), f"\n got: {got}\nwant: {want}"
    with pytest.raises(ConfigError) as err:
        load_config(Path("vault.yml"), env={})
    assert str(err.value) == lines[0]
    assert [str(p) for p in err.value.problems] == lines


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (line,) = [str(p) for p in check_config(Path("vault.yml"), env={})]
    assert (
        line
        == f"vault.yml: file not found — fix: create it or pass the path of your vault.yml (looked at {tmp_path}/vault.yml)"
    )


def test_folder_instead_of_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path)
    (line,) = [str(p) for p in check_config(Path("conf"), env={})]
    assert line == "conf: is a folder, not a file — fix: pass the vault.yml inside it, e.g. conf/vault.yml"


def test_vault_root_with_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path, HEAD.replace("vault: vault", "vault: ~/vault"), {})
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _lines(tmp_path, monkeypatch) == []
    assert load_config(Path("vault.yml"), env={}).root == (tmp_path / "vault").resolve()


def test_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path, HEAD.encode() + b"    schedule: caf\xe9\n", {})
    (line,) = _lines(tmp_path, monkeypatch)
    assert line == "vault.yml:6: not UTF-8 text (byte 0xe9) — fix: save the file as UTF-8"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path, HEAD, {})
    (tmp_path / "vault.yml").chmod(0)
    (line,) = _lines(tmp_path, monkeypatch)
    assert line == "vault.yml: cannot be read: permission denied — fix: chmod +r vault.yml"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AUTOVAULT_STORE": "mysql://x/y"},
            "$AUTOVAULT_STORE: store: store 'mysql://x/y' must start with sqlite:/// or postgresql:// (or"
            " postgresql+psycopg://) — fix: correct or unset $AUTOVAULT_STORE: write sqlite:///",
        ),
        (
            {"AUTOVAULT_OLLAMA_HOST": "ftp://host"},
            "$AUTOVAULT_OLLAMA_HOST: backends.ollama.host: 'ftp://host' is not an http(s) URL"
            " — fix: correct or unset $AUTOVAULT_OLLAMA_HOST: write an http URL, e.g. http://127.0.0.1:11434",
        ),
        (
            {"OLLAMA_HOST": "http://"},
            "$OLLAMA_HOST: backends.ollama.host: 'http://' is not an http(s) URL — fix: correct or unset $OLLAMA_HOST",
        ),
        (
            {"AUTOVAULT_ANTHROPIC_BASE_URL": "api.anthropic.com"},
            "$AUTOVAULT_ANTHROPIC_BASE_URL: backends.anthropic.base_url: 'api.anthropic.com' is not an http(s) URL",
        ),
        (
            {"AUTOVAULT_OPENAI_BASE_URL": "localhost:8080/v1"},
            "$AUTOVAULT_OPENAI_BASE_URL: backends.openai.base_url: 'localhost:8080/v1' is not an http(s) URL",
        ),
    ],
    ids=["store", "autovault-ollama-host", "ollama-host", "anthropic", "openai"],
)
def test_bad_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    write_case(tmp_path, HEAD, {})
    lines = _lines(tmp_path, monkeypatch, env)
    _assert_one_line_each(lines)
    assert len(lines) == 1 and lines[0].startswith(expected), lines
