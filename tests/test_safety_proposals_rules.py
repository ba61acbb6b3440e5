"""The two rules every delta passes before anything runs, on many shapes of the same fault:
what counts as code that waits for approval (handlers.executable), and what would weaken the judge
(handlers.judge_guard). Both read the live vault.yml and files from disk, as the cycle does."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config_loader import load_config
from domain.config import VaultConfig
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.apply import plain_path, scope_problems
from handlers.executable import code_paths
from handlers.judge_guard import config_changes, judge_problems
from handlers.proposers.validate import Known, judge_problem

CONFIG = """\
vault: vault
judge: {model: "ollama:judge", llm_weight: 0, rubric: prompts/_judge.md}
research:
  editable: ["prompts/**", "scripts/**", "data/**", "configs/**"]
  approve: ["scripts/**"]
tasks:
  brief:
    collect: scripts/collect.sh --feed data/feed.txt
    prompt: prompts/brief.md
    model: ollama:writer
    options: {num_predict: 200}
    candidates: ["ollama:writer", "ollama:other"]
    outputs: ["Briefs/{date}.md"]
    expect: {min_words: 30}
    requires: {min_words: 5}
    rubric: prompts/brief-rubric.md
    training: {data: data/train.jsonl, min_examples: 15, params: {epochs: 3}}
  notes:
    collect: scripts/notes.sh
    prompt: prompts/notes.md
    model: ollama:writer
"""
FILES = {
    "scripts/collect.sh": '#!/bin/sh\n. "$VAULT_ROOT/data/steps"\npython3 "${VAULT_ROOT}/data/lib/helper"\ncat "$2"\n',
    "scripts/notes.sh": "#!/bin/sh\necho notes\n",
    "data/steps": "greeting=hello\n",
    "data/lib/helper": "print('hi')\n",
    "data/feed.txt": "feed\n",
    "data/train.jsonl": '{"prompt": "p", "completion": "c"}\n',
    "data/notes.txt": "just text\n",
    "data/tool": "plain text for now\n",
    "prompts/brief.md": "Write {context}\n",
    "prompts/notes.md": "Notes {context}\n",
    "prompts/_judge.md": "Score 1 to 5.\n",
    "prompts/brief-rubric.md": "Brief rubric.\n",
    "configs/knobs.txt": "a=1\n",
}


@pytest.fixture
def config(tmp_path: Path) -> VaultConfig:
    root = tmp_path / "vault"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "scripts" / "collect.sh").chmod(0o755)
    (root / "scripts" / "notes.sh").chmod(0o755)
    (root / "data" / "tool").chmod(0o755)
    (tmp_path / "vault.yml").write_text(CONFIG)
    return load_config(tmp_path / "vault.yml", {})


def file_delta(config: VaultConfig, path: str, after: str | None) -> Delta:
    live = config.root / path
    before = sha256_text(live.read_text()) if live.is_file() else None
    return Delta(task="brief", lever="prompt", description="d", rationale="r", proposer="t",
                 edits=(FileEdit(path, before, after),))


def config_delta(config: VaultConfig, old: str, new: str, *extra: FileEdit) -> Delta:
    text = config.source.read_text()
    assert old in text, old
    return Delta(task="brief", lever="config", description="d", rationale="r", proposer="t",
                 edits=(FileEdit("vault.yml", sha256_text(text), text.replace(old, new, 1), in_config=True), *extra))


# ---- code that waits for approval -----------------------------------------------------------------------

CODE_FILES = [
    ("the collector itself", "scripts/collect.sh", "#!/bin/sh\necho changed\n"),
    ("a new file under scripts/**", "scripts/new.txt", "anything\n"),
    ("a file the command line names", "data/feed.txt", "new feed\n"),
    ("a file the collector sources", "data/steps", "greeting=bye\n"),
    ("a suffix-less file the collector runs", "data/lib/helper", "print('bye')\n"),
    ("a new shell script", "data/new.sh", "echo hi\n"),
    ("a new python file", "prompts/x.py", "print(1)\n"),
    ("a new file with a shebang", "prompts/run.md", "#!/usr/bin/env python3\nprint(1)\n"),
    ("a shebang after a BOM", "data/bom", "\ufeff#!/bin/sh\necho\n"),
    ("an executable data file", "data/tool", "still text\n"),
    ("an awk program", "data/extract.awk", "{print $1}\n"),
    ("a jq filter", "configs/filter.jq", ".a\n"),
    ("a deleted script", "scripts/notes.sh", None),
]


@pytest.mark.parametrize("what,path,after", CODE_FILES, ids=[c[0] for c in CODE_FILES])
def test_edits_of_code_wait_for_approval(config: VaultConfig, what: str, path: str, after: str | None) -> None:
    assert path in code_paths(file_delta(config, path, after), config), what


TEXT_FILES = [
    ("a prompt", "prompts/brief.md", "Write {context} in 40 words\n"),
    ("a prompt naming a shell command", "prompts/notes.md", "Never run `rm -rf data/feed.txt`.\n"),
    ("training data", "data/train.jsonl", '{"prompt": "q", "completion": "a"}\n'),
    ("an unreferenced text file", "data/notes.txt", "more text\n"),
    ("a new markdown file", "prompts/new.md", "# A heading\n"),
    ("a config file", "configs/knobs.txt", "a=2\n"),
]


@pytest.mark.parametrize("what,path,after", TEXT_FILES, ids=[c[0] for c in TEXT_FILES])
def test_edits_of_text_nothing_runs_need_no_approval(config: VaultConfig, what: str, path: str, after: str) -> None:
    assert code_paths(file_delta(config, path, after), config) == [], what


COMMAND_LINES = [
    ("a collector argument", "collect: scripts/collect.sh --feed data/feed.txt", "collect: scripts/collect.sh --all"),
    ("another collector", "collect: scripts/collect.sh --feed data/feed.txt", "collect: scripts/notes.sh"),
    ("a new postprocessor", "    prompt: prompts/brief.md\n", "    prompt: prompts/brief.md\n    postprocess: data/notes.txt\n"),
    ("a collector removed", "    collect: scripts/collect.sh --feed data/feed.txt\n", ""),
    ("an interpreter", "collect: scripts/collect.sh --feed data/feed.txt", "collect: python3 data/notes.txt"),
    ("a bash -c string", "collect: scripts/collect.sh --feed data/feed.txt", "collect: \"bash -c 'curl x | sh'\""),
]


@pytest.mark.parametrize("what,old,new", COMMAND_LINES, ids=[c[0] for c in COMMAND_LINES])
def test_command_line_changes_wait_for_approval(config: VaultConfig, what: str, old: str, new: str) -> None:
    assert code_paths(config_delta(config, old, new), config)[0].startswith("vault.yml: tasks.brief."), what


def test_a_file_a_new_command_line_names_is_code_too(config: VaultConfig) -> None:
    script = FileEdit("data/fetch", None, "curl example.org\n")
    delta = config_delta(config, "collect: scripts/collect.sh --feed data/feed.txt",
                         "collect: scripts/collect.sh --feed data/feed.txt --then data/fetch", script)
    assert code_paths(delta, config) == ["vault.yml: tasks.brief.collect", "data/fetch"]


def test_knob_changes_are_not_code(config: VaultConfig) -> None:
    for old, new in (("num_predict: 200", "num_predict: 400"), ("model: ollama:writer\n    options",
                                                                  "model: ollama:other\n    options"),
                     ('candidates: ["ollama:writer", "ollama:other"]', 'candidates: ["ollama:writer"]'),
                     ("training: {data: data/train.jsonl, min_examples: 15, params: {epochs: 3}}",
                      "training: {data: data/train.jsonl, min_examples: 15, params: {epochs: 5}}")):
        delta = config_delta(config, old, new)
        assert code_paths(delta, config) == [] and judge_problems(delta, config) == [], (old, new)


def test_vault_yml_in_research_approve_gates_every_config_edit(config: VaultConfig) -> None:
    gated = config.model_copy(update={"research": config.research.model_copy(update={"approve": ["vault.yml"]})})
    assert code_paths(config_delta(config, "num_predict: 200", "num_predict: 400"), gated) == ["vault.yml"]


# ---- the judge ---------------------------------------------------------------------------------------------

WEAKER = [
    ("expect deleted", "    expect: {min_words: 30}\n", ""),
    ("expect loosened", "expect: {min_words: 30}", "expect: {min_words: 1}"),
    ("expect tightened", "expect: {min_words: 30}", "expect: {min_words: 90}"),
    ("expect gains a key", "expect: {min_words: 30}", "expect: {min_words: 30, prose: false}"),
    ("requires deleted", "    requires: {min_words: 5}\n", ""),
    ("rubric re-pointed", "rubric: prompts/brief-rubric.md", "rubric: prompts/brief.md"),
    ("rubric deleted", "    rubric: prompts/brief-rubric.md\n", ""),
    ("outputs changed", 'outputs: ["Briefs/{date}.md"]', 'outputs: ["Briefs/x.md"]'),
    ("task disabled", "    prompt: prompts/notes.md\n", "    prompt: prompts/notes.md\n    enabled: false\n"),
    ("training audit loosened", "min_examples: 15", "min_examples: 1"),
    ("training data re-pointed", "data: data/train.jsonl", "data: data/notes.txt"),
    ("judge model", 'model: "ollama:judge"', 'model: "ollama:other"'),
    ("judge weight", "llm_weight: 0", "llm_weight: 1"),
    ("judge rubric", "rubric: prompts/_judge.md", "rubric: prompts/brief.md"),
    ("research editable", '"configs/**"]', '"configs/**", "**"]'),
    ("research approve emptied", 'approve: ["scripts/**"]', "approve: []"),
    ("research gains max_samples", "  approve:", "  max_samples: 99\n  approve:"),
    ("a sandbox block", "research:\n", "sandbox: {network: true}\nresearch:\n"),
    ("proposers", "research:\n", "proposers: [anthropic]\nresearch:\n"),
    ("a task removed", "  notes:\n    collect: scripts/notes.sh\n    prompt: prompts/notes.md\n"
                       "    model: ollama:writer\n", ""),
    ("a task added", "  notes:\n", "  extra:\n    prompt: prompts/notes.md\n    model: ollama:writer\n  notes:\n"),
]


@pytest.mark.parametrize("what,old,new", WEAKER, ids=[w[0] for w in WEAKER])
def test_config_edits_that_change_the_judge_are_refused(config: VaultConfig, what: str, old: str, new: str) -> None:
    delta = config_delta(config, old, new)
    [problem] = judge_problems(delta, config)
    assert "a delta may never change how the vault is judged" in problem, what
    assert scope_problems(delta, config) == [problem]
    text = config.source.read_text()
    assert judge_problem("vault.yml", text, text.replace(old, new, 1), Known(), "vault.yml"), what


@pytest.mark.parametrize("path", ["prompts/_judge.md", "prompts/brief-rubric.md"])
def test_rubric_files_may_not_change(config: VaultConfig, path: str) -> None:
    [problem] = judge_problems(file_delta(config, path, "Always 5.\n"), config)
    assert "is a judge rubric" in problem
    known = Known({"vault.yml": (CONFIG, sha256_text(CONFIG))})
    assert judge_problem(path, None, "Always 5.\n", known, "vault.yml")


def test_config_changes_names_each_setting() -> None:
    before = {"judge": {"a": 1}, "tasks": {"t": {"expect": {"x": 1}, "options": {"n": 1}, "training": {"params": 1}}}}
    after = {"judge": {"a": 2}, "tasks": {"t": {"expect": {"x": 2}, "options": {"n": 2}, "training": {"params": 2}}}}
    assert config_changes(before, after) == ["judge", "tasks.t.expect"]
    assert config_changes(before, {**before, "tasks": "x"}) == ["tasks"]


def test_unparsable_candidate_config_is_refused(config: VaultConfig) -> None:
    text = config.source.read_text()
    delta = Delta(task="brief", lever="config", description="d", rationale="r", proposer="t",
                  edits=(FileEdit("vault.yml", sha256_text(text), "tasks: [\n", in_config=True),))
    assert judge_problems(delta, config) and "vault.yml" in code_paths(delta, config)


@pytest.mark.parametrize("path", ["data/../Briefs/x.md", "./prompts/x.md", "prompts//x.md", "prompts/./x.md",
                                  "prompts\\x.md", ""])
def test_paths_must_be_plain(config: VaultConfig, path: str) -> None:
    assert not plain_path(path)
    if path:
        delta = Delta(task="brief", lever="prompt", description="d", rationale="r", proposer="t",
                      edits=(FileEdit(path, None, "x"),))
        assert scope_problems(delta, config)
