"""As-of read models: folded up to a position or a time in a private database, the live ones untouched; the
same answer `status` gave at that point. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from adapters.history_read import EventLog
from daemon.bootstrap import Services
from projections.as_of import AsOf
from projections.defaults import default_projections
from projections.ledger import ledger_rows
from projections.quality import quality_table, task_quality
from projections.runner import tracking_table
from tests.audit_vault import make_audit_vault, regression_history


def folded(svc: Services, position: int) -> AsOf:
    return AsOf(svc.store, default_projections(svc.config.research.rolling), position)


def live_state(svc: Services) -> tuple[list[tuple[str, int]], list[object]]:
    with svc.engine_connect() as conn:
        tracking = [(r.projection, r.notification_id) for r in conn.execute(select(tracking_table)).all()]
        return sorted(tracking), quality_table(conn)


def test_status_as_of_a_position_is_what_status_said_then(tmp_path: Path, store_url: str) -> None:
    v = make_audit_vault(tmp_path, store_url=store_url)
    seen: dict[int, object] = {}
    for n in range(1, 7):
        if n == 5:
            v.human_edit("prompts/brief.md", v.text("prompts/brief.md").replace("## Commits\n", ""), "cut")
        v.run_day(n)
        with v.svc.engine_connect() as conn:
            seen[v.svc.store.max_notification_id()] = task_quality(conn, "brief")
    before = live_state(v.svc)
    for position, status_then in seen.items():
        with folded(v.svc, position) as past, past.connect() as conn:
            assert task_quality(conn, "brief") == status_then
    assert live_state(v.svc) == before  # the live read models and their positions did not move


def test_replay_until_a_time_cuts_at_the_last_event_made_by_then(tmp_path: Path) -> None:
    v = regression_history(make_audit_vault(tmp_path), days=6)
    log = EventLog(v.svc.store)
    cut = v.marks["break"]
    when = log.timestamp_of(cut)
    assert log.position_at(when) == cut
    assert log.position_at(log.timestamp_of(1).replace(year=2000)) == 0
    with folded(v.svc, log.position_at(when)) as past, past.connect() as conn:
        rows = ledger_rows(conn, "brief")
        assert rows[-1].notification_id == cut and rows[-1].description == "prompts/brief.md changed by human"
        q = task_quality(conn, "brief")
        assert q is not None and q.last_score == 5.0 and q.runs == 4  # day 5's broken run came after
    with folded(v.svc, 0) as nothing, nothing.connect() as conn:
        assert quality_table(conn) == [] and nothing.folded == 0
