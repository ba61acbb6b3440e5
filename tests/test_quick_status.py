"""`status` from a stamp (daemon.read_stamp, daemon.quick_status): the same answer as the full path, on SQLite and
PostgreSQL, and no answer at all — the full path instead — after any change to what the full path read."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.atomic import JOURNAL_DIR
from adapters.raw_db import connect_info
from daemon import read_stamp
from daemon.cli import main
from daemon.quick_status import quick_quality
from domain.quality import TaskQuality
from projections import raw_read

VAULT_YML = """\
vault: vault
store: {store}
judge: {{model: "ollama:judge", rubric: rubrics/judge.md}}
tasks:
  brief: {{prompt: prompts/brief.md, model: "ollama:writer", expect: {{min_words: 5}}}}
  reader: {{prompt: prompts/reader.md, model: "ollama:writer", inputs: ["notes/*.md"]}}
  idle: {{prompt: prompts/reader.md, model: "ollama:writer"}}
"""
HOUR_NS = 3600 * 10**9


def log_lines() -> str:
    """Runs and scores for two tasks, with the judge's reasons; `idle` stays unscored."""
    lines = []
    for task, scores in (("brief", [2, 4, 3, 1, 2, 1]), ("reader", [3, 3, 4])):
        for d, score in enumerate(scores, start=1):
            started = f"2026-03-{d:02d}T06:30:00Z"
            lines.append({"type": "run", "task": task, "started": started, "model": "ollama:writer",
                          "done_reason": "stop", "output": "word " * (3 if score < 3 else 30), "output_tokens": 30})
            lines.append({"type": "score", "task": task, "started": started, "score": score, "judge": "output-judge",
                          "reasons": ["too short", "on topic"] if score < 3 else ["clear"]})
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def age(folder: Path) -> None:
    """Every entry last modified an hour ago: an edit in the same clock tick as a stamp is not in question."""
    then = time.time_ns() - HOUR_NS
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, ns=(then, then), follow_symlinks=False)


def make_vault(tmp_path: Path, store: str) -> Path:
    root = tmp_path / "vault"
    for folder in ("prompts", "notes", "rubrics"):
        (root / folder).mkdir(parents=True)
    (root / "prompts" / "brief.md").write_text("Write a briefing.\nCONTEXT: {context}\n")
    (root / "prompts" / "reader.md").write_text("Summarise: {context}\n")
    (root / "notes" / "a.md").write_text("a note\n")
    (root / "rubrics" / "judge.md").write_text("Score 1-5 for usefulness.\n")
    cfg = tmp_path / "vault.yml"
    cfg.write_text(VAULT_YML.format(store=store))
    log = tmp_path / "logs" / "h.jsonl"
    log.parent.mkdir()
    log.write_text(log_lines())
    assert main(["--config", str(cfg), "--json", "ingest", str(log)]) == 0
    age(root)
    age(tmp_path)
    return cfg


def status(capsys: pytest.CaptureFixture[str], cfg: Path, *flags: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(cfg), *flags, "status"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """A vault with scores, after one full `status` that left its stamp."""
    found = make_vault(tmp_path, store_url)
    status(capsys, found, "--json")
    assert quick_quality(found) is not None
    return found


@pytest.mark.parametrize("flags", [("--json",), ()], ids=["json", "table"])
def test_the_quick_answer_is_the_full_answer(cfg: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             flags: tuple[str, ...]) -> None:
    quick = status(capsys, cfg, *flags)
    shutil.move(read_stamp.stamp_file(str(cfg.resolve())), tmp_path / "stamp.json")  # the next one is full
    assert quick_quality(cfg) is None
    full = status(capsys, cfg, *flags)
    assert quick == full and quick[0] == 0
    if flags:
        rows = json.loads(quick[1])
        assert [r["task"] for r in rows] == ["brief", "reader", "idle"]  # worst first, unscored last
        assert rows[0]["last_reasons"] == ["too short", "on topic"] and rows[2]["last_score"] is None
        assert rows[0]["trend"] is not None and rows[0]["rolling_mean"] == 2.2


def test_skipped_events_are_reported_by_both(cfg: Path, capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    _sql(store_url, "INSERT INTO rm_problems (projection, notification_id, topic, originator_id, originator_version, "
                    "error, recorded_at) VALUES ('runs', 1, 't', 'o', 1, 'bad', '2026-03-01T00:00:00Z')")
    assert quick_quality(cfg) is not None
    quick = status(capsys, cfg, "--json")
    os.unlink(read_stamp.stamp_file(str(cfg.resolve())))
    full = status(capsys, cfg, "--json")
    assert quick == full and "1 events could not be folded" in quick[2]


def _sql(url: str, statement: str) -> None:
    info = connect_info(url.replace("+psycopg", "") if url.startswith("postgresql") else url)
    assert info is not None
    if "sqlite" in info:
        with sqlite3.connect(info["sqlite"]) as conn:
            conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(info["postgresql"], autocommit=True) as conn:
        conn.execute(statement.encode())


def _edit_prompt_same_size(cfg: Path) -> None:
    prompt = cfg.parent / "vault" / "prompts" / "brief.md"
    prompt.write_text(prompt.read_text().replace("Write", "Draft"))


def _add_note(cfg: Path) -> None:
    (cfg.parent / "vault" / "notes" / "b.md").write_text("another note\n")


def _edit_rubric(cfg: Path) -> None:
    (cfg.parent / "vault" / "rubrics" / "judge.md").write_text("Score 1-5 for accuracy.\n")


def _edit_vault_yml(cfg: Path) -> None:
    cfg.write_text(cfg.read_text() + "# a comment changes nothing the loader reads, but the bytes\n")


def _chmod_script(cfg: Path) -> None:
    (cfg.parent / "vault" / "prompts" / "reader.md").chmod(0o600)


def _journal_waits(cfg: Path) -> None:
    journals = Path(read_stamp.load(cfg).journals) / JOURNAL_DIR  # type: ignore[union-attr]
    journals.mkdir(parents=True, exist_ok=True)
    (journals / "apply-1.json").write_text("{}")


@pytest.mark.parametrize("change", [_edit_prompt_same_size, _add_note, _edit_rubric, _edit_vault_yml, _chmod_script,
                                    _journal_waits])
def test_a_change_to_the_vault_means_the_full_path(cfg: Path, change: Callable[[Path], None]) -> None:
    change(cfg)
    assert quick_quality(cfg) is None


@pytest.mark.parametrize("statement", [
    "UPDATE rm_tracking SET notification_id = notification_id - 1 WHERE projection = 'quality'",  # behind
    "UPDATE rm_tracking SET schema = 'an older table shape' WHERE projection = 'runs'",
    "UPDATE rm_config_record SET hash = 'recorded before an edit' WHERE subject = 'task:brief'",
    "DELETE FROM rm_tracking WHERE projection = 'ledger'",
], ids=["behind", "old-shape", "config-not-on-record", "never-folded"])
def test_a_database_the_write_side_must_touch_means_the_full_path(cfg: Path, store_url: str, statement: str) -> None:
    _sql(store_url, statement)
    assert quick_quality(cfg) is None


def test_a_deleted_prompt_is_still_reported(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg.parent / "vault" / "prompts" / "reader.md").unlink()
    code, out, err = status(capsys, cfg, "--json")
    assert code == 2 and out == "" and "prompts/reader.md" in err


@pytest.mark.parametrize("variable", ["AUTOVAULT_OLLAMA_HOST", "AUTOVAULT_STORE", "HOME"])
def test_an_override_in_the_environment_means_the_full_path(cfg: Path, monkeypatch: pytest.MonkeyPatch,
                                                            variable: str) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9" if variable != "HOME" else "/nonexistent")
    assert quick_quality(cfg) is None


def test_other_code_or_a_broken_stamp_means_the_full_path(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(read_stamp, "code_digest", lambda: "an upgraded autovault")
        assert quick_quality(cfg) is None
    assert quick_quality(cfg) is not None
    read_stamp.stamp_file(str(cfg.resolve())).write_text('{"key": "half a stamp"')
    assert quick_quality(cfg) is None


def test_a_vault_symlink_pointed_elsewhere_means_the_full_path(tmp_path: Path, sqlite_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_vault(tmp_path, sqlite_url)
    (tmp_path / "vault").rename(tmp_path / "v1")
    shutil.copytree(tmp_path / "v1", tmp_path / "v2", symlinks=True)  # same names, sizes and mtimes
    (tmp_path / "live").symlink_to("v1")
    cfg.write_text(cfg.read_text().replace("vault: vault", "vault: live"))
    age(tmp_path)
    status(capsys, cfg, "--json")  # records the changed vault.yml: the write side had work, so no stamp yet
    status(capsys, cfg, "--json")
    assert quick_quality(cfg) is not None
    (tmp_path / "live").unlink()
    (tmp_path / "live").symlink_to("v2")
    assert quick_quality(cfg) is None


def test_no_stamp_for_a_racy_entry_or_a_linked_folder(tmp_path: Path, sqlite_url: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_vault(tmp_path, sqlite_url)
    stamp = read_stamp.stamp_file(str(cfg.resolve()))
    (cfg.parent / "vault" / "notes" / "b.md").write_text("written this very moment\n")
    assert status(capsys, cfg, "--json")[0] == 0 and not stamp.exists()
    age(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (cfg.parent / "vault" / "linked").symlink_to(outside)
    age(tmp_path)
    assert status(capsys, cfg, "--json")[0] == 0 and not stamp.exists()
    (cfg.parent / "vault" / "linked").unlink()
    age(tmp_path)
    assert status(capsys, cfg, "--json")[0] == 0 and stamp.exists()


def test_a_store_inside_the_vault_is_not_an_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_vault(tmp_path, "sqlite:///vault/data/events.db")
    status(capsys, cfg, "--json")
    assert quick_quality(cfg) is not None
    log = tmp_path / "logs" / "more.jsonl"
    log.write_text(log_lines().replace("2026-03-", "2026-04-"))
    assert main(["--config", str(cfg), "--json", "ingest", str(log)]) == 0  # the store's files change; caught up
    rows, _ = quick_quality(cfg) or ([], 0)
    assert {q.task: q.runs for q in rows} == {"brief": 12, "reader": 6, "idle": 0}


@pytest.mark.parametrize(("url", "kept"), [
    ("sqlite:////srv/autovault/events.db", {"sqlite": "/srv/autovault/events.db"}),
    ("sqlite:////srv/a b/ev@x.db", {"sqlite": "/srv/a b/ev@x.db"}),
    ("sqlite:///relative.db", None),
    ("sqlite:////srv/events.db?timeout=5", None),
    ("postgresql+psycopg://av@db:5432/vault", {"postgresql": "postgresql://av@db:5432/vault"}),
    ("postgresql+psycopg://av@db/vault?options=-csearch_path%3Dx", {"postgresql": "postgresql://av@db/vault?options=-csearch_path%3Dx"}),
    ("postgresql+psycopg://av:s3cret@db/vault", None),
    ("postgresql+psycopg://av:p%40ss@db/vault", None),
    ("postgresql+psycopg://av@db/vault?password=s3cret", None),
    ("mysql://av@db/vault", None),
])
def test_a_stamp_never_keeps_a_password(url: str, kept: dict[str, str] | None) -> None:
    assert connect_info(url) == kept


def test_a_stamp_never_keeps_a_password_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_vault(tmp_path, "sqlite:///state/events.db")
    monkeypatch.setenv("AUTOVAULT_STORE", "postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none?connect_timeout=1")
    assert status(capsys, cfg, "--json")[0] == 1
    cache = Path(os.environ["XDG_CACHE_HOME"])
    assert not any("s3cret" in p.read_text() for p in cache.rglob("*.json"))


def test_the_quick_path_loads_neither_pydantic_nor_sqlalchemy(cfg: Path) -> None:
    script = ("import sys; from daemon.cli import main; code = main(['--config', sys.argv[1], '--json', 'status']); "
              "heavy = sorted(m for m in ('pydantic', 'sqlalchemy', 'structlog', 'eventsourcing', 'rich') "
              "if m in sys.modules); print(json.dumps(heavy), file=sys.stderr); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", "import json; " + script, str(cfg)], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
    assert [r["task"] for r in json.loads(proc.stdout)] == ["brief", "reader", "idle"]


def test_the_plain_sql_reads_the_tables_the_read_models_define() -> None:
    from adapters.database import EVENTS_TABLE
    from projections.config_record import config_record_table
    from projections.problems import problems_table
    from projections.quality import quality_table_rm
    from projections.runner import tracking_table

    plain = [raw_read.EVENTS, raw_read.TRACKING, raw_read.CONFIG_RECORD, raw_read.PROBLEMS, raw_read.QUALITY]
    assert plain == [EVENTS_TABLE, tracking_table.name, config_record_table.name, problems_table.name,
                     quality_table_rm.name]
    columns = raw_read.QUALITY_COLUMNS
    assert columns == tuple(f.name for f in dataclasses.fields(TaskQuality))
    assert set(raw_read.QUALITY_COLUMNS) <= set(quality_table_rm.c.keys())
