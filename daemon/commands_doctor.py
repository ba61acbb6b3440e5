"""`autovault doctor`: what crashes and bad events left behind, and what this start recovered.

Opening the vault (bootstrap) already settles interrupted applies and removes orphaned shadows; doctor shows
what that did, the events a read model skipped (`projections.problems`: which, where, why), and the applies
and shadows live processes hold right now. Exit status 1 when an event was skipped or an apply is pending.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from adapters.atomic import JOURNAL_DIR
from adapters.workspace import PREFIX
from daemon.open_vault import open_vault
from daemon.output import print_json, table
from handlers.apply import apply_root
from projections.problems import fold_problems


def cmd_doctor(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        with svc.engine_connect() as conn:
            problems = fold_problems(conn)
        recovery = svc.recovery
        journals = sorted(p.name for p in (apply_root(svc.config) / JOURNAL_DIR).glob("*")
                          if p.is_dir()) if (apply_root(svc.config) / JOURNAL_DIR).is_dir() else []
    shadows = sorted(str(p) for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*") if p.is_dir())
    if args.json:
        print_json({"recovered": recovery.lines(), "pending": recovery.pending, "skipped_events": [
            {"projection": p.projection, "notification_id": p.notification_id, "event": p.event,
             "aggregate": p.originator_id, "version": p.originator_version, "error": p.error,
             "recorded_at": p.recorded_at} for p in problems], "applies_in_progress": journals,
            "shadows_in_use": shadows})
    else:
        for line in recovery.lines() or ["nothing to recover: no interrupted apply, no orphaned shadow"]:
            print(line)
        if problems:
            table("events the read models skipped (the rest of the history is folded)",
                  ["event id", "event", "aggregate", "read model", "error"],
                  [(p.notification_id, p.event, f"{p.originator_id[:8]} v{p.originator_version}", p.projection,
                    p.error) for p in problems],
                  caption="events written by an older autovault or by hand; new ones are checked at ingest")
        else:
            print("every event is folded into the read models")
        if journals:
            print(f"applies in progress (held by a running autovault): {', '.join(journals)}")
        if shadows:
            print(f"shadow workspaces in use: {len(shadows)}")
    return 1 if problems or recovery.pending else 0
