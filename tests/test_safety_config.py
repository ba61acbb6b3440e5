"""Hostile vault.yml files (issue 14): each is one clear line at `check` — file, line, field, fix — never a
traceback, a hang, a huge echo or a pass. The base vault and harness are test_config_malformed's.

`{root}` in an expected line stands for the absolute vault root; `{outside}` for a folder beside the vault.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.config_loader import ConfigError, check_config, load_config
from tests.test_config_malformed import CASES, HEAD, _write

Setup = Callable[[Path], None]


def laughs(levels: int = 9) -> str:
    """The 'billion laughs': 9 anchors of 9 aliases each, about 1 KB, 9^9 values when expanded."""
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def link(rel: str, target: str) -> Setup:
    """A symlink at vault/`rel` to `target` under the folder beside the vault (created with some content)."""

    def make(base: Path) -> None:
        outside = base / "outside" / target
        outside.parent.mkdir(parents=True, exist_ok=True)
        if "." in outside.name:
            outside.write_text("secret\n")
        else:
            outside.mkdir(exist_ok=True)
            (outside / "x.md").write_text("secret\n")
            (outside / "a.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
        at = base / "vault" / rel
        at.parent.mkdir(parents=True, exist_ok=True)
        at.symlink_to(outside)

    return make


BIG = "x" * 600_000
# (id, vault.yml text, setup, expected problem lines (prefixes))
SAFETY_CASES: list[tuple[str, str, Setup | None, list[str]]] = [
    ("billion-laughs", HEAD + "    options: {}\nanchors:\n" + laughs(), None,
     ["vault.yml:8: aliases (*name) expand to more than 20000 values — fix: use each anchor once or twice"]),
    ("nested-brackets", HEAD + "    options: " + "[" * 5000 + "]" * 5000 + "\n", None,
     ["vault.yml:6: brackets nested deeper than 32 levels — fix: vault.yml needs a few levels of nesting"]),
    ("nested-mappings", HEAD + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(40)) + "  " * 42 + "x: 1\n", None,
     ["vault.yml:36: nested deeper than 32 levels — fix: vault.yml needs a few levels of nesting"]),
    ("ten-megabyte-file", HEAD + "    schedule: '" + "x" * 10_000_000 + "'\n", None,
     ["vault.yml: 9.5 MB, more than the 1 MB a vault.yml may have — fix: keep long text"]),
    ("huge-value-clipped", HEAD + f"    schedule: '{BIG}'\n", None,
     ["vault.yml:6: tasks.brief.schedule: schedule 'xxxxxxxxxx"]),
    ("huge-path-clipped", HEAD.replace("prompts/brief.md", BIG), None,
     ["vault.yml:4: tasks.brief.prompt: 'xxxxxxxxxx"]),
    ("huge-key", HEAD + f"  {BIG}:\n    prompt: prompts/brief.md\n", None,
     ["vault.yml:6: YAML syntax error at column 600003: while scanning a simple key, could not find expected ':'"]),
    ("num-predict-1e30", HEAD + "    options: {num_predict: 1.0e+30}\n", None,
     ["vault.yml:6: tasks.brief.options.num_predict: unable to parse input string as an integer, exceeded maximum "
      "size — fix: set a whole number of tokens"]),
    ("num-predict-5e6", HEAD + "    options: {num_predict: 5000000}\n", None,
     ["vault.yml:6: tasks.brief.options.num_predict: must be at most 4194304, got 5000000 — fix: set a whole number"]),
    ("timeout-inf", HEAD + "    timeout: .inf\n", None,
     ["vault.yml:6: tasks.brief.timeout: expected a finite number, got inf — fix: use seconds"]),
    ("temperature-nan", HEAD + "    options: {temperature: .nan}\n", None,
     ["vault.yml:6: tasks.brief.options.temperature: expected a finite number, got nan — fix: use a number from 0"]),
    ("n-ctx-1e20", HEAD + "backends:\n  embedded: {n_ctx: 1.0e+20}\n", None,
     ["vault.yml:7: backends.embedded.n_ctx: unable to parse input string as an integer, exceeded maximum size — "
      "fix: use a whole number of tokens"]),
    ("seed-beyond-int64", HEAD + "    options: {seed: 99999999999999999999999}\n", None,
     ["vault.yml:6: tasks.brief.options.seed: must be at most 9223372036854775807, got 99999999999999999999999"]),
    ("samples-billion", HEAD + "research: {samples: 1000000000, max_samples: 1000000000}\n", None,
     ["vault.yml:6: research.samples: must be at most 10000, got 1000000000",
      "vault.yml:6: research.max_samples: must be at most 10000, got 1000000000"]),
    ("blocks-min-above-max", HEAD + "    expect:\n      blocks: {regex: '^x$', min: 5, max: 3}\n", None,
     ["vault.yml:7: tasks.brief.expect.blocks: max 3 is below min 5: no output could pass — fix: set blocks.max to"]),
    ("words-min-above-max", HEAD + "    expect: {min_words: 50, max_words: 10}\n", None,
     ["vault.yml:6: tasks.brief.expect: max_words 10 is below min_words 50: no output could pass — fix: set "
      "expect.max_words"]),
    ("no-tasks", "vault: vault\ntasks: {}\n", None,
     ["vault.yml:2: tasks: no tasks: a vault needs at least one — fix: add at least one task"]),
    ("prompt-symlinked-outside", HEAD.replace("prompts/brief.md", "prompts/linked.md"),
     link("prompts/linked.md", "id_rsa.md"),
     ["vault.yml:4: tasks.brief.prompt: 'prompts/linked.md' is outside the vault (through a symlink) — fix: move"]),
    ("prompt-in-symlinked-folder", HEAD.replace("prompts/brief.md", "shared/x.md"), link("shared", "home"),
     ["vault.yml:4: tasks.brief.prompt: 'shared/x.md' is outside the vault (through a symlink)"]),
    ("collect-symlinked-outside", HEAD + "    collect: scripts/linked.sh --all\n", link("scripts/linked.sh", "evil.sh"),
     ["vault.yml:6: tasks.brief.collect: 'scripts/linked.sh' is outside the vault (through a symlink)"]),
    ("rubric-symlinked-outside", HEAD + "    rubric: prompts/judge.md\n", link("prompts/judge.md", "judge.md"),
     ["vault.yml:6: tasks.brief.rubric: 'prompts/judge.md' is outside the vault (through a symlink)"]),
    ("input-glob-reaches-outside", HEAD + "    inputs: [notes/*.md]\n", link("notes/stolen.md", "passwd.md"),
     ["vault.yml:6: tasks.brief.inputs[0]: glob 'notes/*.md' matches 'notes/stolen.md', a symlink to outside"]),
    ("output-folder-symlinked-outside", HEAD + "    outputs: ['Out/{date}.md']\n", link("Out", "etc"),
     ["vault.yml:6: tasks.brief.outputs[0]: output 'Out/{date}.md' lands outside the vault (through a symlink)"]),
    ("training-data-symlinked-outside", HEAD + "    training: {data: 'feed/*.jsonl'}\n", link("feed", "feed"),
     ["vault.yml:6: tasks.brief.training.data: glob 'feed/*.jsonl' matches 'feed/a.jsonl', a symlink to outside"]),
    ("logs-symlinked-outside", HEAD + "logs: heartbeat\n", link("heartbeat", "logs"),
     ["vault.yml:6: logs: logs folder 'heartbeat' is outside the vault"]),
]


@pytest.mark.parametrize(("text", "setup", "expected"), [c[1:] for c in SAFETY_CASES], ids=[c[0] for c in SAFETY_CASES])
def test_hostile_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, setup: Setup | None,
                        expected: list[str]) -> None:
    _write(tmp_path, text, {})
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
    _write(tmp_path, HEAD.replace("prompts/brief.md", "prompts/alias.md"), {})
    os.symlink("brief.md", tmp_path / "vault" / "prompts" / "alias.md")
    monkeypatch.chdir(tmp_path)
    assert check_config(Path("vault.yml"), env={}) == []


def test_merge_keys_and_aliases_within_reason_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("vault: vault\ntasks:\n  t0: &d\n    prompt: prompts/brief.md\n    model: ollama:qwen3:8b\n"
            + "".join(f"  t{i}:\n    <<: *d\n    schedule: hourly\n" for i in range(1, 200)))
    _write(tmp_path, text, {})
    monkeypatch.chdir(tmp_path)
    assert check_config(Path("vault.yml"), env={}) == []
    assert len(load_config(Path("vault.yml"), env={}).tasks) == 200
