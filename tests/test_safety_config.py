"""Hostile vault.yml files (issue 14): each is one clear line at `check` — file, line, field, fix — never a
traceback, a hang, a huge echo or a pass. The cases and the base vault are `testbed.bad_configs`'.

`{root}` in an expected line stands for the absolute vault root; `{outside}` for a folder beside the vault.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.config_loader import ConfigError, check_config, load_config
from testbed.bad_configs import BIG, CASES, HEAD, SAFETY_CASES, Setup, write_case


@pytest.mark.parametrize(("text", "setup", "expected"), [c[1:] for c in SAFETY_CASES], ids=[c[0] for c in SAFETY_CASES])
def test_hostile_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, setup: Setup | None,
                        expected: list[str]) -> None:
    write_case(tmp_path, text, {})
    if setup is not None:
        setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    lines = [str(p) for p in check_config(Path("vault.yml"), env={})]
    assert len(lines) == len(expected), lines
    for got, want in zip(lines, expected, strict=True):
        assert got.startswith(want), f"\n got: {got[:300]}\nwant: {want}"
        assert "\n" not in got and "Traceback" not in got and len(got) < 1000, got[:300]
        assert BIG not in got and "x" * 200 not in got  # a huge value is clipped, never echoed
    with pytest.raises(ConfigError):
        load_config(Path("vault.yml"), env={})


def test_more_than_ninety_two_bad_configs_are_covered() -> None:
    assert len(CASES) + len(SAFETY_CASES) >= 92
    assert len({c[0] for c in CASES} | {c[0] for c in SAFETY_CASES}) == len(CASES) + len(SAFETY_CASES)


def test_a_symlink_inside_the_vault_to_a_file_inside_it_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path, HEAD.replace("prompts/brief.md", "prompts/alias.md"), {})
    os.symlink("brief.md", tmp_path / "vault" / "prompts" / "alias.md")
    monkeypatch.chdir(tmp_path)
    assert check_config(Path("vault.yml"), env={}) == []


def test_merge_keys_and_aliases_within_reason_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("vault: vault\ntasks:\n  t0: &d\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n"
            + "".join(f"  t{i}:\n    <<: *d\n    schedule: hourly\n" for i in range(1, 200)))
    write_case(tmp_path, text, {})
    monkeypatch.chdir(tmp_path)
    assert check_config(Path("vault.yml"), env={}) == []
    assert len(load_config(Path("vault.yml"), env={}).tasks) == 200
