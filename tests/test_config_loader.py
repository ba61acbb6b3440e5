"""adapters.config_loader on valid vaults: what it fills in, resolves, overrides, and accepts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.config_env import resolve_store
from adapters.config_loader import ConfigError, ConfigProblem, check_config, load_config

VALID = """\
vault: vault
store: sqlite:///.autovault/events.db
logs: logs
backends:
  ollama: {host: "http://127.0.0.1:11434", timeout: 60}
  anthropic: {model: claude-sonnet-5-5, api_key_env: ANTHROPIC_API_KEY}
judge: {model: embedded:smollm2-135m, rubric: prompts/_judge.md, context_lines: 40}
proposers: [rules, anthropic]
research:
  threshold: 3.5
  target: 3.8
  samples: 3
  max_samples: 9
  window: "01:00-06:00"
  editable: [prompts/**, scripts/**]
  approve: [scripts/**]
tasks:
  morning-briefing:
    schedule: daily 06:30
    collect: scripts/collect.sh
    prompt: prompts/morning-briefing.md
    model: ollama:qwen3:8b
    candidates: [ollama:qwen3:8b, ollama:gemma3:12b, "openai:local@http://127.0.0.1:8080/v1"]
    options: {num_predict: 300, num_ctx: 8192, think: false}
    postprocess: null
    inputs: [notes/*.md]
    outputs: ["Briefings/{date}.md"]
    expect: {min_words: 120, sections: ["## Commits", "## Goals"], forbid: ["\\\\(or '"]}
  blog-drafter:
    schedule: "30 7 * * 1-5"
    prompt: prompts/morning-briefing.md
    model: anthropic:claude-sonnet-5-5
    outputs: ["Drafts/brief-{date}.md"]
  blog-writer:
    schedule: weekly sun 09:00
    prompt: prompts/morning-briefing.md
    model: embedded
    inputs: ["Drafts/brief-*.md"]
    requires: {min_words: 300}
    training: {data: data/*.jsonl, label_field: label}
"""
FILES = {
    "vault/prompts/morning-briefing.md": "Summarise {context}\n",
    "vault/prompts/_judge.md": "Score 1-5\n",
    "vault/scripts/collect.sh": "#!/bin/sh\nls notes | head -10\n",
    "vault/notes/a.md": "---\ntitle: a\n---\nnote\n",
    "vault/data/train.jsonl": '{"prompt": "p", "completion": "c", "label": "x"}\n',
}


def make_vault(folder: Path, text: str = VALID, files: dict[str, str] | None = None) -> Path:
    for rel, content in {**FILES, **(files or {})}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content)
    (folder / "vault.yml").write_text(text)
    return folder / "vault.yml"


def test_valid_vault_loads_with_absolute_locations(tmp_path: Path) -> None:
    path = make_vault(tmp_path)
    config = load_config(path, env={})
    assert config.source == path.resolve()
    assert config.root == (tmp_path / "vault").resolve()
    assert config.store == f"sqlite:///{tmp_path.resolve()}/.autovault/events.db"
    assert config.store.startswith("sqlite:////")
    assert not (tmp_path / ".autovault").exists()  # resolving creates nothing
    assert sorted(config.tasks) == ["blog-drafter", "blog-writer", "morning-briefing"]
    brief = config.task("morning-briefing")
    assert brief.options.as_dict() == {"num_predict": 300, "num_ctx": 8192, "think": False}
    assert brief.expect.forbid == ["\\(or '"]
    assert config.proposers == ["rules", "anthropic"]
    assert check_config(path, env={}) == []


def test_relative_path_argument_resolves_against_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_vault(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    config = load_config("project/vault.yml", env={})
    assert config.root == (tmp_path / "project" / "vault").resolve()
    assert config.store == f"sqlite:///{(tmp_path / 'project').resolve()}/.autovault/events.db"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:///events.db", "sqlite:///{base}/events.db"),
        ("sqlite:///./state/../db/events.db?timeout=5", "sqlite:///{base}/db/events.db?timeout=5"),
        ("sqlite:////var/lib/autovault/events.db", "sqlite:////var/lib/autovault/events.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://root@127.0.0.1:5432/test", "postgresql+psycopg://root@127.0.0.1:5432/test"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_store_resolution(store: str, expected: str) -> None:
    base = Path("/srv/vaults/mine")
    assert resolve_store(store, base) == expected.replace("{base}", str(base))


def test_environment_overrides_store_and_hosts(tmp_path: Path) -> None:
    path = make_vault(tmp_path)
    env = {
        "AUTOVAULT_STORE": "postgresql+psycopg://root@127.0.0.1:5432/test",
        "AUTOVAULT_OLLAMA_HOST": "http://gpu-box:11434",
        "OLLAMA_HOST": "http://ignored:1",
        "AUTOVAULT_ANTHROPIC_BASE_URL": "http://127.0.0.1:9001",
        "AUTOVAULT_OPENAI_BASE_URL": "https://llm.example/v1",
    }
    config = load_config(path, env=env)
    assert config.store == "postgresql+psycopg://root@127.0.0.1:5432/test"
    assert config.backends.ollama.host == "http://gpu-box:11434"
    assert config.backends.ollama.timeout == 60  # the rest of the YAML mapping is kept
    assert config.backends.anthropic.base_url == "http://127.0.0.1:9001"
    assert config.backends.anthropic.model == "claude-sonnet-5-5"
    assert config.backends.openai.base_url == "https://llm.example/v1"


def test_ollama_host_fallback_without_scheme(tmp_path: Path) -> None:
    config = load_config(make_vault(tmp_path), env={"OLLAMA_HOST": "10.0.0.5:11434", "AUTOVAULT_OLLAMA_HOST": ""})
    assert config.backends.ollama.host == "http://10.0.0.5:11434"


def test_relative_store_from_the_environment_resolves_against_vault_yml(tmp_path: Path) -> None:
    config = load_config(make_vault(tmp_path), env={"AUTOVAULT_STORE": "sqlite:///state/av.db"})
    assert config.store == f"sqlite:///{tmp_path.resolve()}/state/av.db"


def test_env_none_reads_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOVAULT_STORE", "postgresql://u@h/db")
    assert load_config(make_vault(tmp_path)).store == "postgresql://u@h/db"


def test_environment_creates_missing_backend_sections(tmp_path: Path) -> None:
    text = "vault: vault\ntasks:\n  t:\n    prompt: prompts/morning-briefing.md\n    model: ollama:qwen3:8b\n"
    config = load_config(make_vault(tmp_path, text), env={"AUTOVAULT_OPENAI_BASE_URL": "http://h:1/v1"})
    assert config.backends.openai.base_url == "http://h:1/v1"
    assert config.store == f"sqlite:///{tmp_path.resolve()}/.autovault/events.db"  # the default, resolved too


def test_all_problems_are_reported_in_file_order(tmp_path: Path) -> None:
    text = VALID.replace("num_predict: 300", "num_predict: lots").replace("prompts/_judge.md", "prompts/judge.md")
    text = text.replace("model: anthropic:claude-sonnet-5-5", "model: antropic:claude-sonnet-5-5")
    problems = check_config(make_vault(tmp_path, text), env={})
    keys = [p.key for p in problems]
    assert keys == ["judge.rubric", "tasks.morning-briefing.options.num_predict", "tasks.blog-drafter.model"]
    assert [p.line for p in problems] == [7, 24, 32]
    assert all(isinstance(p, ConfigProblem) and p.file == str(tmp_path / "vault.yml") for p in problems)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "vault.yml", env={})
    assert str(err.value) == str(problems[0])
    assert err.value.report().splitlines() == [str(p) for p in problems]


def test_problem_prints_as_one_line() -> None:
    problem = ConfigProblem(
        "vault.yml",
        23,
        "tasks.morning-briefing.options.num_predict",
        "expected an integer, got 'lots'",
        "set a whole number of tokens, e.g. 600",
    )
    assert str(problem) == (
        "vault.yml:23: tasks.morning-briefing.options.num_predict: expected an integer, got 'lots'"
        " — fix: set a whole number of tokens, e.g. 600"
    )
    assert str(ConfigProblem("f.yml", None, "", "line one\nline two", "x")) == "f.yml: line one line two — fix: x"


def test_inputs_written_by_another_task_need_no_file_yet(tmp_path: Path) -> None:
    # Drafts/ does not exist, but blog-drafter writes Drafts/brief-{date}.md, which blog-writer reads
    assert not (tmp_path / "vault" / "Drafts").exists()
    assert check_config(make_vault(tmp_path), env={}) == []


def test_outputs_with_name_placeholder_feed_a_literal_input(tmp_path: Path) -> None:
    text = VALID.replace('outputs: ["Drafts/brief-{date}.md"]', 'outputs: ["Drafts/{name}.md"]').replace(
        'inputs: ["Drafts/brief-*.md"]', 'inputs: ["Drafts/latest.md"]'
    )
    assert check_config(make_vault(tmp_path, text), env={}) == []


def test_yaml_conveniences_anchors_merges_and_word_like_task_names(tmp_path: Path) -> None:
    text = """\
vault: vault
tasks:
  "on":
    prompt: prompts/morning-briefing.md
    model: ollama:qwen3:8b
    options: &opts {num_predict: 600}
  "1":
    <<: {prompt: prompts/morning-briefing.md, model: ollama:qwen3:8b}
    model: anthropic:claude-sonnet-5-5
    options: *opts
"""
    config = load_config(make_vault(tmp_path, text), env={})
    assert sorted(config.tasks) == ["1", "on"]
    assert config.tasks["1"].model == "anthropic:claude-sonnet-5-5"  # explicit key beats the merge
    assert config.tasks["1"].options.num_predict == 600


def test_plain_on_key_stays_a_string(tmp_path: Path) -> None:
    text = "vault: vault\ntasks:\n  on:\n    prompt: prompts/morning-briefing.md\n    model: ollama:qwen3:8b\n"
    assert list(load_config(make_vault(tmp_path, text), env={}).tasks) == ["on"]


def test_collector_with_arguments_and_absolute_path_inside_the_vault(tmp_path: Path) -> None:
    absolute = tmp_path / "vault" / "prompts" / "morning-briefing.md"
    text = VALID.replace("collect: scripts/collect.sh", "collect: scripts/collect.sh --days 3").replace(
        "prompt: prompts/morning-briefing.md\n    model: ollama:qwen3:8b\n    candidates",
        f"prompt: {absolute}\n    model: ollama:qwen3:8b\n    candidates",
    )
    config = load_config(make_vault(tmp_path, text), env={})
    assert config.task("morning-briefing").prompt == str(absolute)


def test_vault_may_be_the_folder_of_vault_yml(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.md").write_text("x")
    (tmp_path / "vault.yml").write_text(
        "vault: .\ntasks:\n  t:\n    prompt: prompts/p.md\n    model: embedded:smollm2-135m\n"
    )
    config = load_config(tmp_path / "vault.yml", env={})
    assert config.root == tmp_path.resolve()


def test_dump_leaves_out_loader_fields(tmp_path: Path) -> None:
    dumped = load_config(make_vault(tmp_path), env={}).model_dump()
    assert "source" not in dumped and "root" not in dumped


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_prompt(tmp_path: Path) -> None:
    path = make_vault(tmp_path)
    (tmp_path / "vault/prompts/morning-briefing.md").chmod(0)
    assert "cannot be read" in str(check_config(path, env={})[0])


class _BrokenEnv(dict[str, str]):
    def get(self, key: object, default: object = None) -> str:
        raise RuntimeError("environment unavailable")


def test_an_unexpected_failure_is_still_one_line(tmp_path: Path) -> None:
    (problem,) = check_config(make_vault(tmp_path), env=_BrokenEnv())
    assert str(problem) == (
        f"{tmp_path / 'vault.yml'}: internal error while checking: RuntimeError: environment unavailable"
        " — fix: report it with this vault.yml"
    )
