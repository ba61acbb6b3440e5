"""The read models every process keeps caught up, and how a command that only reads them opens a vault.

Opening a vault for a command that acts (`daemon.open_vault.open_vault`) settles interrupted applies, records a
changed vault.yml and changed tasks, and folds new events into the read models — which takes the write side, an
eventsourcing Application over SQLAlchemy's ORM, and a load of every task's aggregate. `status` and `history` only
read, and usually all of that has nothing to do: `open_read_models` checks that it has nothing to do, cheaply —
no journal waits, every read model has folded the last event with its current table shape, and vault.yml and its
tasks as loaded are the ones on record (`projections.config_record`) — and then opens the database alone. When
any check fails it opens the vault the full way, so the answer is the same either way. When the checks pass on a
vault.yml given by path, it leaves a stamp (`daemon.read_stamp`) from which the next `status` can answer without
loading any of this (`daemon.quick_status`).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection, Engine

from adapters.atomic import journal_home, journals_waiting
from adapters.database import last_position, open_engine
from adapters.raw_db import connect_info
from adapters.workspace import sweep_orphans
from daemon import read_stamp
from domain.config import VaultConfig
from handlers.config_history import config_hashes, task_config_hash
from projections import raw_read
from projections.config_record import VAULT, ConfigRecordProjection, on_record, task_subject, vault_digest
from projections.cycle_facts import CycleFactsProjection
from projections.experiments import ExperimentsProjection
from projections.last_change import LastChangeProjection
from projections.ledger import LedgerProjection
from projections.quality import QualityProjection
from projections.runner import Projection, schema_fingerprint, tracking_table
from projections.runs import RunsProjection

if TYPE_CHECKING:
    from daemon.bootstrap import Services


def live_projections(config: VaultConfig) -> list[Projection]:
    """What `bootstrap()` folds events into, in every process that opens the vault."""
    return [
        RunsProjection(),
        QualityProjection(rolling=config.research.rolling),
        LedgerProjection(),
        ExperimentsProjection(),
        CycleFactsProjection(),
        LastChangeProjection(),
        ConfigRecordProjection(),
    ]


def file_text(path: Path) -> str | None:
    """A file's text for the config history (None when it is not there: a config built in memory)."""
    return path.read_text(encoding="utf-8", errors="replace") if path.is_absolute() and path.is_file() else None


def vault_text(config: VaultConfig, rel: str | None) -> str:
    """A vault file's text for the config history ('' when absent)."""
    return (file_text(config.root / rel) or "") if rel else ""


class ReadModels(Protocol):
    """What a reading command uses: `Services` has it, and so does `ReadOnlyVault`."""

    config: VaultConfig

    def engine_connect(self) -> Connection: ...

    def __enter__(self) -> ReadModels: ...

    def __exit__(self, *_: object) -> None: ...


class ReadOnlyVault:
    """The read models of a vault whose write side has nothing to do: its database, nothing else; `facts` are
    what that was checked against (read model → table-shape fingerprint, config subject → hash)."""

    def __init__(self, config: VaultConfig, engine: Engine, facts: tuple[dict[str, str], dict[str, str]]) -> None:
        self.config = config
        self.engine = engine
        self.facts = facts

    def engine_connect(self) -> Connection:
        return self.engine.connect()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ReadOnlyVault:
        return self

    def __exit__(self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None) -> None:
        self.close()


def open_read_models(config: str | Path | VaultConfig) -> ReadOnlyVault | Services:
    """The vault opened for reading: its database alone when the write side has nothing to do, else in full."""
    from daemon.open_vault import open_vault, read_config

    pending = read_stamp.before_load(Path(config)) if isinstance(config, str | Path) else None
    cfg = read_config(config)
    quick = _read_only(cfg)
    if quick is None:
        return open_vault(cfg)
    if pending is not None:
        _leave_stamp(pending, quick)
    return quick


def _read_only(config: VaultConfig) -> ReadOnlyVault | None:
    if journals_waiting(journal_home(config.root, config.source.parent)):
        return None  # an interrupted apply: recovering it needs the write side
    sweep_orphans()  # as bootstrap() does
    engine = open_engine(config.store)
    try:
        last = last_position(engine)
        if last is not None:
            fingerprints = {p.name: schema_fingerprint(p) for p in live_projections(config)}
            subjects = config_subjects(config)
            with engine.connect() as conn:
                if _caught_up(conn, fingerprints, last) and on_record(conn, subjects):
                    return ReadOnlyVault(config, engine, (fingerprints, subjects))
    except BaseException:
        engine.dispose()
        raise
    engine.dispose()
    return None


def _caught_up(conn: Connection, fingerprints: dict[str, str], last: int) -> bool:
    """Has every read model (name → its table shape's fingerprint) folded event `last`, with that shape?"""
    found = inspect(conn)
    if not found.has_table(tracking_table.name) or \
            "schema" not in {c["name"] for c in found.get_columns(tracking_table.name)}:
        return False
    t = tracking_table.c
    return raw_read.folded(conn.execute(
        select(t.projection, t.notification_id, t.schema).where(t.projection.in_(list(fingerprints)))), fingerprints, last)


def _leave_stamp(pending: read_stamp.Pending, vault: ReadOnlyVault) -> None:
    """What this read was checked against, for `daemon.quick_status`: only when the pre-read found the vault root
    and the store the loader found, and the database can be opened without a password in a cache file."""
    config = vault.config
    db = connect_info(vault.engine.url.render_as_string(hide_password=False))
    if db is None or not read_stamp.matches(pending, config.root, config.store):
        return
    fingerprints, subjects = vault.facts
    journals = journal_home(config.root, config.source.parent)
    read_stamp.save(read_stamp.Stamp(pending.place, pending.key, db, str(journals), fingerprints, subjects,
                                     tuple(config.tasks)))


def config_subjects(config: VaultConfig) -> dict[str, str]:
    """What `register_tasks` would find on record when it has nothing to record: subject → hash."""
    text_hash, sections, _ = config_hashes(config, file_text(config.source), lambda rel: vault_text(config, rel))
    subjects = {task_subject(name): task_config_hash(config, name) for name in config.tasks}
    subjects[VAULT] = vault_digest(text_hash, sections)
    return subjects
