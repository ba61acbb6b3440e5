"""The task runner against real scripts in temp vaults, with an in-test model double."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters import subprocesses
from adapters.backends.base import BackendError
from adapters.runner import TaskRunner
from adapters.workspace import ShadowWorkspace
from domain.config import TaskConfig
from domain.runs import Completion

DAY = "2026-03-18"
ENV = {"PATH": os.environ.get("PATH", os.defpath), "HOME": "/tmp", "LANG": "C.UTF-8"}


@dataclass
class FakeModel:
    """Answers every prompt with `text`; records the calls; raises `error` when set."""

    text: str = "## Commits\nthree commits today\n"
    error: Exception | None = None
    calls: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)

    def complete(
        self, model: str, prompt: Any, options: dict[str, Any], *, json_schema: dict[str, Any] | None = None
    ) -> Completion:
        self.calls.append((model, prompt, options))
        if self.error:
            raise self.error
        done = "length" if options.get("num_predict", 10**9) <= len(self.text.split()) else "stop"
        return Completion(self.text, done, len(str(prompt).split()), len(self.text.split()), model=model)


def write(root: Path, rel: str, text: str, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    write(root, "prompts/mb.md", "Briefing for {date}.\n{context}\nKeep {var} as is.\n")
    write(root, "scripts/mb.sh", "echo 'commits: 3'\necho 'goals: 2'\n")
    return root


def task(**kw: Any) -> TaskConfig:
    base: dict[str, Any] = {
        "prompt": "prompts/mb.md",
        "model": "ollama:qwen3:8b",
        "collect": "scripts/mb.sh",
        "options": {"num_predict": 300, "num_ctx": 8192, "think": False},
        "outputs": ["Briefings/{date}.md"],
    }
    base.update(kw)
    return TaskConfig.model_validate(base)


def runner(root: Path, model: FakeModel, **kw: Any) -> TaskRunner:
    return TaskRunner(root, model, base_env=kw.pop("base_env", ENV), **kw)


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def tree(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (sha(p.read_bytes()), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_collect_output_becomes_context_and_the_output_is_written(vault: Path) -> None:
    model = FakeModel()
    result = runner(vault, model).run("morning-briefing", task(), date=DAY, run_id="r1")
    assert result.status == "ok", result.error
    ((_, prompt, options),) = model.calls
    assert prompt == f"Briefing for {DAY}.\ncommits: 3\ngoals: 2\n\nKeep {{var}} as is.\n"
    assert options == {"num_predict": 300, "num_ctx": 8192, "think": False}
    out = vault / "Briefings" / f"{DAY}.md"
    assert out.read_text() == model.text
    assert result.artifacts == {f"Briefings/{DAY}.md": sha(model.text)}
    assert result.read_hashes == {
        "prompts/mb.md": sha((vault / "prompts/mb.md").read_bytes()),
        "scripts/mb.sh": sha((vault / "scripts/mb.sh").read_bytes()),
    }
    assert set(result.durations) == {"collect", "render", "model", "write"}
    assert (result.run_id, result.num_predict, result.num_ctx, result.context) == (
        "r1",
        300,
        8192,
        "commits: 3\ngoals: 2\n",
    )
    assert result.output == model.text and result.prompt_chars == len(prompt) and result.source == "cli"


@pytest.mark.timeout(20)
def test_timeout_kills_the_collector_and_its_children(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "sleep 30 &\necho $! > child.pid\nsleep 30\n")
    result = runner(vault, FakeModel()).run("mb", task(timeout=0.5), date=DAY)
    assert result.status == "failed"
    assert result.error is not None and "\n" not in result.error
    assert result.error.startswith("collect: scripts/mb.sh timed out after 0.5 s")
    assert "tasks.mb.timeout" in result.error
    child = int((vault / "child.pid").read_text())
    assert _dead_eventually(child)
    assert not (vault / "Briefings").exists()


def _dead_eventually(pid: int) -> bool:
    """SIGKILL is delivered asynchronously: wait (bounded) until the pid is gone or a zombie."""
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.timeout(20)
def test_background_child_left_by_a_finished_collector_does_not_hold_the_run(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "sleep 30 &\necho $! > child.pid\necho done\n")
    result = runner(vault, FakeModel()).run("mb", task(timeout=60), date=DAY)
    assert result.status == "ok", result.error
    assert result.context == "done\n"
    assert _dead_eventually(int((vault / "child.pid").read_text()))


def test_output_cap_keeps_the_first_bytes_and_marks_truncation(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "yes abcdefghi | head -c 5000000\n")  # 5 MB: far beyond a pipe buffer
    result = runner(vault, FakeModel()).run("mb", task(output_cap=1000), date=DAY)
    assert result.status == "ok", result.error
    assert result.context == ("abcdefghi\n" * 100)
    assert result.notes == ["collect: stdout truncated at 1000 bytes (tasks.mb.output_cap)"]


def test_failing_script_is_a_failed_run_with_its_stderr_and_nothing_written(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "echo partial\necho 'jq: command not found' >&2\nexit 3\n")
    model = FakeModel()
    result = runner(vault, model).run("mb", task(), date=DAY)
    assert result.status == "failed" and result.done_reason == "error"
    assert result.error is not None
    assert result.error.startswith("collect: scripts/mb.sh exited 3: jq: command not found;")
    assert "\n" not in result.error
    assert model.calls == [] and result.artifacts == {}
    assert not (vault / "Briefings").exists()


def test_backend_error_is_a_failed_run_and_nothing_is_written(vault: Path) -> None:
    model = FakeModel(error=BackendError("cannot reach ollama at http://127.0.0.1:11434; start `ollama serve`"))
    result = runner(vault, model).run("mb", task(), date=DAY)
    assert result.status == "failed"
    assert result.error == "model ollama:qwen3:8b: cannot reach ollama at http://127.0.0.1:11434; start `ollama serve`"
    assert not (vault / "Briefings").exists()


def test_missing_prompt_names_the_file_and_the_config_field(vault: Path) -> None:
    result = runner(vault, FakeModel()).run("mb", task(prompt="prompts/nope.md"), date=DAY)
    assert result.status == "failed"
    assert result.error == (
        "render: prompt: prompts/nope.md not found in the vault; create it or fix tasks.mb.prompt in vault.yml"
    )


POSTPROC = """#!/bin/bash
# Splits '=== NOTE: name ===' blocks from stdin into Knowledge/practice--name.md files.
awk '/^=== NOTE: .* ===$/ {name=$3; next} name {print > ("Knowledge/practice--" name ".md")}'
echo "wrote notes"
"""


def test_postprocessor_gets_the_output_on_stdin_and_its_files_are_artifacts(vault: Path) -> None:
    write(vault, "scripts/post.sh", POSTPROC, 0o755)
    (vault / "Knowledge").mkdir()
    write(vault, "Knowledge/practice--old.md", "untouched")
    model = FakeModel(text="=== NOTE: alpha ===\nbody a\n=== NOTE: beta ===\nbody b\n")
    t = task(postprocess="scripts/post.sh", outputs=["Knowledge/practice--*.md"])
    result = runner(vault, model).run("lesson-distiller", t, date=DAY)
    assert result.status == "ok", result.error
    assert (vault / "Knowledge/practice--alpha.md").read_text() == "body a\n"
    assert result.artifacts == {
        "Knowledge/practice--alpha.md": sha("body a\n"),
        "Knowledge/practice--beta.md": sha("body b\n"),
    }
    assert "scripts/post.sh" in result.read_hashes and "postprocess" in result.durations


def test_postprocessor_handles_stdin_larger_than_a_pipe_buffer(vault: Path) -> None:
    write(vault, "scripts/post.sh", "mkdir -p Out && cat > Out/all.md\n")
    model = FakeModel(text="word " * 400_000)  # 2 MB
    result = runner(vault, model).run("mb", task(postprocess="scripts/post.sh", outputs=["Out/all.md"]), date=DAY)
    assert result.status == "ok", result.error
    assert (vault / "Out/all.md").read_text() == model.text


def test_failed_postprocessor_leaves_no_output_files(vault: Path) -> None:
    write(vault, "scripts/post.sh", "mkdir -p Knowledge\necho half > Knowledge/practice--x.md\necho boom >&2\nexit 1\n")
    t = task(postprocess="scripts/post.sh", outputs=["Knowledge/practice--*.md"])
    result = runner(vault, FakeModel()).run("ld", t, date=DAY)
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("postprocess: scripts/post.sh exited 1: boom;")
    assert not (vault / "Knowledge/practice--x.md").exists()
    assert result.artifacts == {}
    assert result.output  # the model's answer is kept for diagnosis


def test_shadow_run_leaves_the_live_vault_untouched(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "echo state >> state.txt\ncat state.txt\n")
    write(vault, "state.txt", "live\n")
    before = tree(vault)
    result = runner(vault, FakeModel()).run("mb", task(), date=DAY, shadow=True, source="verify")
    assert result.status == "ok", result.error
    assert result.context == "live\nstate\n"
    assert result.artifacts.keys() == {f"Briefings/{DAY}.md"}
    assert tree(vault) == before


def test_a_given_shadow_with_an_overlay_runs_the_candidate(vault: Path) -> None:
    before = tree(vault)
    model = FakeModel()
    with ShadowWorkspace.create(vault) as ws:
        ws.overlay({"prompts/mb.md": "Candidate prompt: {context}"})
        result = runner(vault, model).run("mb", task(), date=DAY, shadow=ws)
        assert (ws.root / "Briefings" / f"{DAY}.md").exists()
    assert result.status == "ok", result.error
    assert model.calls[0][1] == "Candidate prompt: commits: 3\ngoals: 2\n"
    assert result.read_hashes["prompts/mb.md"] == sha("Candidate prompt: {context}")
    assert tree(vault) == before


def test_secrets_never_reach_scripts(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "env | cut -d= -f1 | sort\n")
    env = {
        **ENV,
        "ANTHROPIC_API_KEY": "sk-1",
        "GITHUB_TOKEN": "t",
        "DB_PASSWORD": "p",
        "MY_SECRET": "s",
        "UNRELATED": "u",
        "OPENAI_API_KEY": "sk-2",
    }
    r = TaskRunner(vault, FakeModel(), base_env=env, env_passthrough=("UNRELATED", "OPENAI_API_KEY"))
    names = set(r.run("mb", task(), date=DAY).context.split())
    assert not names & {"ANTHROPIC_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "MY_SECRET", "OPENAI_API_KEY"}
    assert {"PATH", "UNRELATED", "VAULT_ROOT", "AUTOVAULT_TASK", "AUTOVAULT_DATE", "AUTOVAULT_RUN_ID"} <= names


def test_paths_outside_the_vault_are_refused(vault: Path) -> None:
    write(vault.parent, "outside.sh", "echo pwned > pwned.txt\n")
    r = runner(vault, FakeModel())
    result = r.run("mb", task(collect="../outside.sh"), date=DAY)
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("collect: '../outside.sh' escapes the vault")
    assert not (vault / "pwned.txt").exists() and not (vault.parent / "pwned.txt").exists()
    # The schema already refuses such outputs; the runner refuses them again (defence in depth).
    sneaky = task().model_copy(update={"outputs": ["../escaped-{date}.md"]})
    result = r.run("mb", sneaky, date=DAY)
    assert result.status == "failed" and result.error is not None and result.error.startswith("write: ")
    assert not (vault.parent / f"escaped-{DAY}.md").exists()


def test_inputs_newest_first_named_and_hashed(vault: Path) -> None:
    write(vault, "prompts/mb.md", "Latest: {input:brief-b}\nAll:\n{inputs}")
    old = write(vault, "Drafts/brief-a.md", "older brief")
    new = write(vault, "Drafts/brief-b.md", "newer brief")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    os.utime(new, ns=(2_000_000_000, 2_000_000_000))
    model = FakeModel()
    result = runner(vault, model).run("writer", task(collect=None, inputs=["Drafts/brief-*.md"]), date=DAY)
    assert result.status == "ok", result.error
    assert model.calls[0][1] == (
        "Latest: newer brief\nAll:\n--- Drafts/brief-b.md ---\nnewer brief\n\n--- Drafts/brief-a.md ---\nolder brief\n"
    )
    assert {"Drafts/brief-a.md", "Drafts/brief-b.md"} <= result.read_hashes.keys()


def test_files_named_on_the_collector_command_line_are_hashed(vault: Path) -> None:
    write(vault, "scripts/mb.sh", 'head -2 "$1"\n')
    write(vault, "data/signals.txt", "a\nb\nc\n")
    result = runner(vault, FakeModel()).run("fs", task(collect="scripts/mb.sh data/signals.txt"), date=DAY)
    assert result.status == "ok", result.error
    assert result.context == "a\nb\n"
    assert result.read_hashes["data/signals.txt"] == sha("a\nb\nc\n")


def test_context_override_replaces_the_collector(vault: Path) -> None:
    write(vault, "scripts/mb.sh", "exit 1\n")
    result = runner(vault, FakeModel()).run("mb", task(), date=DAY, context_override="fixed input")
    assert result.status == "ok", result.error
    assert result.context == "fixed input" and "scripts/mb.sh" not in result.read_hashes


def test_shebang_script_runs_under_its_interpreter_even_when_not_executable(vault: Path) -> None:
    write(vault, "scripts/collect.py", "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1:])\n", 0o644)
    result = runner(vault, FakeModel()).run("mb", task(collect="scripts/collect.py --days 3"), date=DAY)
    assert result.status == "ok", result.error
    assert result.context == "py ['--days', '3']\n"


def test_date_defaults_to_the_clock_and_started_is_utc(vault: Path) -> None:
    import datetime as dt

    now = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)
    result = runner(vault, FakeModel(), clock=lambda: now).run("mb", task())
    assert result.started == "2026-03-18T12:00:00Z"
    assert result.artifacts.keys() == {f"Briefings/{now.astimezone().date().isoformat()}.md"}


@pytest.mark.parametrize("large", [False, True], ids=["forked-child", "launcher"])
def test_a_missing_interpreter_is_a_clear_failed_run(vault: Path, large: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same one line whether the script starts from a forked child or, in a large process, the launcher."""
    monkeypatch.setattr(subprocesses, "LARGE_PROCESS_BYTES", 0 if large else 1 << 60)
    write(vault, "scripts/mb.sh", "#!/nonexistent/interpreter\necho hi\n", 0o755)
    result = runner(vault, FakeModel()).run("mb", task(), date=DAY)
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("collect: cannot start scripts/mb.sh")
