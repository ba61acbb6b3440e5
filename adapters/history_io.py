"""The whole history as one JSONL file — every event and every blob — and back into an empty store.

For sharing an audit: the receiver imports the file into an empty store (SQLite or PostgreSQL, either way) and
sees the same events at the same positions, so "#1234" in an audit means the same change on both sides.

Format (one JSON object per line; `.gz` files are gzip-compressed):
  {"format": "autovault-history", "version": 1, "exported": ISO, "events": N, "blobs": M, "last_position": P}
  {"blob": sha256, "text": "..."}          or  {"blob": sha256, "base64": "..."}   × M (before the events)
  {"event": position, "aggregate": uuid, "version": n, "topic": "...", "state": "<stored JSON>"}   × N
  {"end": true, "events": N, "blobs": M}
Event states are the stored bytes, unchanged (upcasters apply when they are read, as for any stored event);
snapshots are not exported (they are rebuilt from events). The export reads one consistent snapshot of the
store; the import is one transaction — a bad line leaves the target store as it was.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from eventsourcing.utils import resolve_topic
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapters.blobs import blobs_table
from adapters.eventstore import VaultStore

FORMAT = "autovault-history"
VERSION = 1
CHUNK = 500


class HistoryFileError(ValueError):
    """A history file that cannot be imported; one line naming the file, the line, the field and the fix."""


@dataclass(frozen=True)
class Counts:
    events: int
    blobs: int
    last_position: int


def _open(path: Path, mode: str, *, gz: bool | None = None) -> IO[str]:
    if path.suffix == ".gz" if gz is None else gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _events_table(store: VaultStore) -> Table:
    recorder: Any = store.recorder
    table: Table = recorder.events_record_cls.__table__
    return table


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def export_history(store: VaultStore, path: Path) -> Counts:
    """Write every event and blob of `store` to `path` (see the module docstring)."""
    events = _events_table(store)
    e, b = events.c, blobs_table.c
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            n_events = int(conn.execute(select(func.count()).select_from(events)).scalar_one())
            n_blobs = int(conn.execute(select(func.count()).select_from(blobs_table)).scalar_one())
            last = int(conn.execute(select(func.coalesce(func.max(e.id), 0))).scalar_one())
            with _open(tmp, "w", gz=path.suffix == ".gz") as out:
                out.write(_line({"format": FORMAT, "version": VERSION, "exported": dt.datetime.now(dt.UTC).isoformat(),
                                 "events": n_events, "blobs": n_blobs, "last_position": last}))
                for digest, data in _pages(conn, select(b.hash, b.data), b.hash):
                    raw = bytes(data)
                    try:
                        out.write(_line({"blob": digest, "text": raw.decode("utf-8")}))
                    except UnicodeDecodeError:
                        out.write(_line({"blob": digest, "base64": base64.b64encode(raw).decode("ascii")}))
                query = select(e.id, e.originator_id, e.originator_version, e.topic, e.state)
                for position, originator, version, topic, state in _pages(conn, query, e.id):
                    raw = bytes(state)
                    row: dict[str, Any] = {"event": int(position), "aggregate": str(originator),
                                           "version": int(version), "topic": topic}
                    try:
                        row["state"] = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        row["state_base64"] = base64.b64encode(raw).decode("ascii")
                    out.write(_line(row))
                out.write(_line({"end": True, "events": n_events, "blobs": n_blobs}))
    tmp.replace(path)
    return Counts(n_events, n_blobs, last)


def _pages(conn: Connection, query: Any, key: Any) -> Iterator[Any]:
    last = None
    while True:
        q = query if last is None else query.where(key > last)
        rows = conn.execute(q.order_by(key).limit(CHUNK)).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        last = rows[-1][0]


def import_history(store: VaultStore, path: Path) -> Counts:
    """Load `path` into `store`, which must hold no events yet; raises HistoryFileError, writing nothing then."""
    if store.max_notification_id():
        raise HistoryFileError(f"{path}: the store already holds {store.max_notification_id()} events — fix: import "
                               "into an empty store (a new `store:` URL, or AUTOVAULT_STORE=sqlite:///new.db)")
    events = _events_table(store)
    try:
        with store.engine.begin() as conn, _open(path, "r") as lines:
            counts = _load(conn, events, path, lines)
            if conn.dialect.name == "postgresql" and counts.last_position:
                conn.execute(text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                             {"t": events.name, "n": counts.last_position})
    except IntegrityError as exc:
        first = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise HistoryFileError(f"{path}: two events claim one place ({first}) — fix: export the history again") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise HistoryFileError(f"{path}: cannot read it ({exc}) — fix: pass an export made by `autovault export`") from None
    return counts


def _load(conn: Connection, events: Table, path: Path, lines: IO[str]) -> Counts:
    header: dict[str, Any] | None = None
    blobs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    n_blobs = n_events = last = 0
    ended = False
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not raw.strip():
            continue
        if ended:
            raise HistoryFileError(f"{where}: a line after the end line — fix: pass one export, unedited")
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise HistoryFileError(f"{where}: not JSON ({exc.args[0]}) — fix: pass an export made by "
                                   "`autovault export`, unedited") from None
        if not isinstance(obj, dict):
            raise HistoryFileError(f"{where}: not a JSON object — fix: pass an export made by `autovault export`")
        if header is None:
            header = _header(where, obj)
        elif "blob" in obj:
            blobs.append(_blob(where, obj))
            n_blobs += 1
        elif "event" in obj:
            row = _event(where, obj, last)
            last = row["id"]
            rows.append(row)
            n_events += 1
        elif obj.get("end") is True:
            _check_end(where, obj, n_events, n_blobs)
            ended = True
        else:
            raise HistoryFileError(f"{where}: field 'blob', 'event' or 'end' missing — fix: pass an export made by "
                                   "`autovault export`")
        if len(blobs) >= CHUNK:
            _put_blobs(conn, blobs)
        if len(rows) >= CHUNK:
            conn.execute(insert(events), rows)
            rows.clear()
    if header is None:
        raise HistoryFileError(f"{path}: empty — fix: pass an export made by `autovault export`")
    if not ended:
        raise HistoryFileError(f"{path}: no end line, the file is cut short — fix: copy the whole export again")
    _put_blobs(conn, blobs)
    if rows:
        conn.execute(insert(events), rows)
    return Counts(n_events, n_blobs, last)


def _header(where: str, obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("format") != FORMAT:
        raise HistoryFileError(f"{where}: field 'format' is {obj.get('format')!r}, not {FORMAT!r} — fix: pass a file "
                               "made by `autovault export`")
    if obj.get("version") != VERSION:
        raise HistoryFileError(f"{where}: field 'version' is {obj.get('version')!r}; this autovault reads version "
                               f"{VERSION} — fix: import it with the autovault that exported it, or a newer one")
    return obj


def _blob(where: str, obj: dict[str, Any]) -> dict[str, Any]:
    digest = obj.get("blob")
    if isinstance(obj.get("text"), str):
        data = obj["text"].encode("utf-8")
    elif isinstance(obj.get("base64"), str):
        try:
            data = base64.b64decode(obj["base64"], validate=True)
        except ValueError:
            raise HistoryFileError(f"{where}: field 'base64' is not base64 — fix: export the history again") from None
    else:
        raise HistoryFileError(f"{where}: field 'text' (or 'base64') missing — fix: export the history again")
    if not isinstance(digest, str) or hashlib.sha256(data).hexdigest() != digest:
        raise HistoryFileError(f"{where}: field 'blob' is not the sha256 of its content (edited or damaged) — fix: "
                               "export the history again")
    return {"hash": digest, "size": len(data), "data": data}


def _event(where: str, obj: dict[str, Any], last: int) -> dict[str, Any]:
    position, version, topic = obj.get("event"), obj.get("version"), obj.get("topic")
    if not isinstance(position, int) or position <= last:
        raise HistoryFileError(f"{where}: field 'event' must be a position after {last}, got {position!r} — fix: "
                               "export the history again")
    if not isinstance(version, int) or version < 1:
        raise HistoryFileError(f"{where}: field 'version' must be a positive integer, got {version!r}")
    try:
        aggregate = UUID(str(obj.get("aggregate")))
    except ValueError:
        raise HistoryFileError(f"{where}: field 'aggregate' is not a UUID: {obj.get('aggregate')!r}") from None
    if not isinstance(topic, str):
        raise HistoryFileError(f"{where}: field 'topic' missing")
    try:
        resolve_topic(topic)
    except Exception:
        raise HistoryFileError(f"{where}: field 'topic' names {topic!r}, which this autovault does not know — fix: "
                               "import with the autovault version that exported it, or a newer one") from None
    if isinstance(obj.get("state"), str):
        state = obj["state"].encode("utf-8")
    elif isinstance(obj.get("state_base64"), str):
        state = base64.b64decode(obj["state_base64"])
    else:
        raise HistoryFileError(f"{where}: field 'state' missing")
    return {"id": position, "originator_id": aggregate, "originator_version": version, "topic": topic, "state": state}


def _check_end(where: str, obj: dict[str, Any], events: int, blobs: int) -> None:
    if obj.get("events") != events or obj.get("blobs") != blobs:
        raise HistoryFileError(f"{where}: the end line counts {obj.get('events')} events and {obj.get('blobs')} blobs, "
                               f"the file holds {events} and {blobs} — fix: export the history again")


def _put_blobs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(blobs_table).on_conflict_do_nothing(index_elements=["hash"]), rows)
    rows.clear()
