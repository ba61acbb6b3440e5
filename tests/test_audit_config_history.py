"""vault.yml on the record: every loaded version once, sections diffable, passwords masked; every kind of change
a task's audit lists — config reload, model, backend, judge, data — classified from many shapes of edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.bootstrap import audit_deps, register_tasks
from domain.aggregates import Vault
from domain.config import VaultConfig
from handlers.audit import task_changes
from handlers.config_history import masked
from handlers.policies import affected_tasks
from projections.changes import change_diff
from tests.audit_vault import AuditVault, make_audit_vault


def vault_events(v: AuditVault) -> list[str]:
    return [type(e).__name__ for e in v.svc.store.events.get(Vault.create_id())]


def test_each_loaded_version_is_recorded_once_with_its_changed_sections(tmp_path: Path) -> None:
    v = make_audit_vault(tmp_path)
    assert vault_events(v) == ["Configured"]
    register_tasks(v.svc.store, v.svc.config)
    assert vault_events(v) == ["Configured"]  # loading the same file again records nothing
    v.replace_in_config(r"min_effect: 0.3", "min_effect: 0.4", "research")
    last = list(v.svc.store.events.get(Vault.create_id()))[-1]
    assert vault_events(v) == ["Configured", "Reconfigured"] and last.changed == ["file", "research"]  # type: ignore[attr-defined]
    text = v.svc.store.blobs.get_text(last.sections["file"])  # type: ignore[attr-defined]
    assert text == v.cfg.read_text()  # any past vault.yml can be rebuilt


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://ops:s3cret@db.lan:5432/vault", "postgresql+psycopg://ops:***@db.lan:5432/vault"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ("sqlite:///state/events.db", "sqlite:///state/events.db"),
])
def test_a_password_in_a_url_never_reaches_the_blob_store(url: str, shown: str) -> None:
    assert masked(f"store: {url}\n") == f"store: {shown}\n"


@pytest.mark.parametrize(("pattern", "text", "kind", "summary"), [
    (r"num_predict: 600", "num_predict: 900", "model", "brief options"),
    (r"model: ollama:gemma3:12b", "model: ollama:gemma3:4b", "model", "brief model"),
    (r"backends:\n  ollama: \{host: \"([^\"]+)\", timeout: 20\}", 'backends:\n  ollama: {host: "\\1", timeout: 45}',
     "backend", "backends"),
    (r'judge: \{model: "ollama:judge"', 'judge: {model: "ollama:judge2"', "judge", "judge"),
    (r"expect: \{min_words: 80", "expect: {min_words: 120", "judge", "brief judging (expect)"),
    (r"min_effect: 0.3", "min_effect: 0.5", "config", "research"),
    (r"outputs: \[\"Briefs/\{date\}.md\"\]", 'outputs: ["Briefs/{date}-brief.md"]', "config", "brief outputs"),
])
def test_a_config_reload_is_classified_by_what_it_changed(tmp_path: Path, pattern: str, text: str, kind: str,
                                                          summary: str) -> None:
    v = make_audit_vault(tmp_path)
    v.replace_in_config(pattern, text, "reload")
    (change,) = task_changes(audit_deps(v.svc), "brief")
    assert change.kind == kind and summary in change.summary and change.by == "config"
    diff = change_diff(change, v.svc.store.blobs.get_text)
    assert "--- a/vault.yml" in diff and "+++ b/vault.yml" in diff


def test_another_tasks_block_is_not_this_tasks_change(tmp_path: Path) -> None:
    v = make_audit_vault(tmp_path)
    v.replace_in_config(r"tasks:\n", "tasks:\n  notes:\n    prompt: prompts/brief.md\n    model: ollama:gemma3:4b\n",
                        "other")
    assert task_changes(audit_deps(v.svc), "brief") == []
    assert [c.kind for c in task_changes(audit_deps(v.svc), "notes")] == []  # its first appearance is no change


@pytest.mark.parametrize("daemon_first", [True, False])
def test_a_watched_vault_yml_edit_is_one_change_whichever_record_comes_first(tmp_path: Path,
                                                                            daemon_first: bool) -> None:
    v = make_audit_vault(tmp_path)
    before = v.cfg.read_text()
    after = before.replace("num_predict: 600", "num_predict: 800")

    def daemon_saw_it() -> None:  # what the daemon's watcher records: Changed(vault.yml, by=human) with the diff
        from domain.delta import unified_diff
        from domain.ids import sha256_text

        v.svc.store.record_change("brief", "vault.yml", sha256_text(before), sha256_text(after),
                                  unified_diff("vault.yml", before, after), "human")

    if daemon_first:
        v.cfg.write_text(after)
        daemon_saw_it()
        v.replace_in_config("num_predict: 800", "num_predict: 800", "loaded")
    else:
        v.replace_in_config("num_predict: 600", "num_predict: 800", "loaded")
        daemon_saw_it()
    (change,) = task_changes(audit_deps(v.svc), "brief")
    assert (change.kind, change.by) == ("model", "human") and change.paths == ("vault.yml",)
    assert "brief options" in change.summary and {s.name for s in change.sections} >= {"task.brief"}


def test_training_data_edits_are_recorded_for_the_task_that_trains_on_them(tmp_path: Path) -> None:
    v = make_audit_vault(tmp_path)
    (v.root / "data").mkdir()
    (v.root / "data" / "brief.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    v.replace_in_config(r"    expect:", "    training: {data: data/*.jsonl, min_examples: 1}\n    expect:", "train")
    config: VaultConfig = v.svc.config
    assert affected_tasks(config, "data/brief.jsonl") == ["brief"]
    v.human_edit("data/brief.jsonl", '{"prompt": "a", "completion": "c"}\n', "data")
    kinds = [(c.kind, c.summary) for c in task_changes(audit_deps(v.svc), "brief")]
    assert kinds == [("data", "vault.yml: brief training changed"), ("data", "human edit: data/brief.jsonl changed")]
