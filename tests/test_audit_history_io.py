"""The whole history as JSONL and back: a round trip between SQLite and PostgreSQL keeps every event at its
position and every blob, so an audit reads the same on both sides; a damaged file is refused, writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.eventstore import VaultStore
from adapters.history_io import HistoryFileError, export_history, import_history
from daemon.bootstrap import audit_deps, bootstrap, register_tasks
from handlers.audit import audit
from tests.audit_vault import AuditVault, make_audit_vault, regression_history


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> AuditVault:
    return regression_history(make_audit_vault(tmp_path_factory.mktemp("history")), days=7)


def body(path: Path) -> list[str]:
    """The export's lines but its export time."""
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    head.pop("exported")
    return [json.dumps(head, sort_keys=True), *lines[1:]]


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["sqlite-to-postgresql", "postgresql-to-sqlite"])
def test_a_round_trip_keeps_every_event_at_its_place(built: AuditVault, tmp_path: Path, pg_url: str,
                                                      direction: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'copy.db'}"
    first = tmp_path / "history.jsonl"
    source_url = sqlite_url if direction.startswith("sqlite") else pg_url
    target_url = pg_url if direction.startswith("sqlite") else sqlite_url
    export_history(built.svc.store, tmp_path / "original.jsonl")
    with VaultStore(source_url) as source:
        import_history(source, tmp_path / "original.jsonl")
        export_history(source, first)
    with VaultStore(target_url) as target:
        counts = import_history(target, first)
        export_history(target, tmp_path / "again.jsonl")
        # the next event goes after the imported ones (PostgreSQL's id sequence was moved past them)
        added = target.record_change("brief", "prompts/brief.md", None, None, "", "human").notification_id
        assert added == counts.last_position + 1
    assert body(tmp_path / "again.jsonl") == body(first) == body(tmp_path / "original.jsonl")
    assert counts.events == built.svc.store.max_notification_id() and counts.blobs > 0
    here = audit(audit_deps(built.svc), "brief", record=False)
    with bootstrap(built.cfg, env={}, store_url=target_url) as svc:
        svc.projections.catch_up()
        there = audit(audit_deps(svc), "brief", record=False)
        register_tasks(svc.store, svc.config)
        assert svc.store.max_notification_id() == counts.last_position + 1  # same vault.yml: nothing new recorded
    assert there.verdict == here.verdict and there.window == here.window
    assert [c.as_dict() for c in there.changes] == [c.as_dict() for c in here.changes]
    assert there.diffs == here.diffs


def test_a_compressed_export_round_trips_on_sqlite(built: AuditVault, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl.gz"
    counts = export_history(built.svc.store, path)
    with VaultStore(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        assert import_history(copy, path) == counts
        assert copy.max_notification_id() == counts.last_position


def damaged(lines: list[str], how: str) -> list[str]:
    out = list(lines)
    if how == "cut short":
        return out[:-3]
    if how == "tampered blob":
        i = next(i for i, ln in enumerate(out) if '"blob"' in ln)
        obj = json.loads(out[i])
        obj["text"] = obj["text"] + " (edited)"
        out[i] = json.dumps(obj)
    elif how == "unknown event class":
        i = next(i for i, ln in enumerate(out) if '"event"' in ln)
        out[i] = out[i].replace('"topic":"domain.aggregates:', '"topic":"domain.aggregates:Gone')
    elif how == "not json":
        out.insert(3, "{not json")
    elif how == "positions out of order":
        i = next(i for i, ln in enumerate(out) if '"event"' in ln)
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


@pytest.mark.parametrize(("how", "says"), [
    ("cut short", "no end line"), ("tampered blob", "is not the sha256 of its content"),
    ("unknown event class", "which this autovault does not know"), ("not json", "not JSON"),
    ("positions out of order", "must be a position after"),
])
def test_a_damaged_file_is_one_clear_error_and_writes_nothing(built: AuditVault, tmp_path: Path, how: str,
                                                              says: str) -> None:
    good = tmp_path / "good.jsonl"
    export_history(built.svc.store, good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(damaged(good.read_text().splitlines(), how)) + "\n")
    with VaultStore(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        with pytest.raises(HistoryFileError) as err:
            import_history(copy, bad)
        assert copy.max_notification_id() == 0 and not copy.blobs.has(json.loads(good.read_text().splitlines()[1])["blob"])
    message = str(err.value)
    assert says in message and str(bad) in message and "\n" not in message
    assert "fix:" in message or "field" in message


def test_importing_into_a_store_that_has_history_is_refused(built: AuditVault, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    export_history(built.svc.store, path)
    with pytest.raises(HistoryFileError, match=r"already holds \d+ events — fix: import into an empty store"):
        import_history(built.svc.store, path)
