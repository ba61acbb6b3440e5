"""`autovault status` answered from the read models with the standard library, when a stamp says it may be.

`daemon.read_stamp` explains the stamp. Here its key is recomputed from the files as they are now; when it
matches, the checks the full read makes against the database still run — no apply journal waiting, every read
model at the newest event with the table shape the stamp names, the config on record — now through the bare
driver (`adapters.raw_db`, `projections.raw_read`). Any miss, and any error at all, returns None: the command
then takes the full path, which gives the same answer (tests/test_quick_status.py holds the two to it) or says
what is wrong.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from adapters.atomic import journals_waiting
from adapters.raw_db import connect
from adapters.workspace import sweep_orphans
from daemon import read_stamp
from domain.quality import TaskQuality
from projections import raw_read


def quick_status(args: argparse.Namespace) -> int | None:
    """`status` (table or JSON) from the stamp; None when the full path must answer."""
    if args.signatures or args.as_of:
        return None
    try:
        found = quick_quality(Path(args.config))
    except Exception:  # a cache: whatever goes wrong here, the full path answers or explains
        return None
    if found is None:
        return None
    from daemon.commands_status import show_status

    rows, skipped = found
    return show_status(args, rows, skipped, None)


def quick_quality(config: Path) -> tuple[list[TaskQuality], int] | None:
    """(the quality rows of the stamped tasks, worst first; the count of skipped events), or None."""
    stamp = read_stamp.load(config)
    if stamp is None or read_stamp.inputs_key(stamp.place, os.environ) != stamp.key:
        return None
    if journals_waiting(stamp.journals):
        return None  # an interrupted apply: recovering it needs the write side

    sweep_orphans()  # as every opening of a vault does
    with connect(stamp.db) as cur:
        last = raw_read.last_position(cur)
        if not (raw_read.caught_up(cur, stamp.fingerprints, last) and raw_read.on_record(cur, stamp.subjects)):
            return None
        tasks = set(stamp.tasks)
        rows = [q for q in raw_read.quality_rows(cur) if q.task in tasks]
        return rows, raw_read.problem_count(cur)
