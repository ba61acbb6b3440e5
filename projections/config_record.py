"""What configuration is on record: each task's config hash (its last `Registered`/`Reconfigured`) and the digest of
vault.yml's last `Vault.Configured`/`Reconfigured` (its text hash and section hashes).

Every command that opens a vault records a changed vault.yml and changed tasks first (`daemon.bootstrap.
register_tasks`), which means loading every Task aggregate and the Vault one. A command that only reads asks this
read model instead (`daemon.reading`): when it matches the loaded vault.yml, there is nothing to record and the
write side need not be opened at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from sqlalchemy import Column, String, Table, select
from sqlalchemy.engine import Connection

from domain.aggregates import Task, Vault
from projections.runner import Projection, metadata, upsert

VAULT = "vault"  # the subject of vault.yml's row; a task's is "task:<name>"

config_record_table = Table(
    "rm_config_record",
    metadata,
    Column("subject", String(300), primary_key=True),
    Column("hash", String(64), nullable=False),
)

REGISTERED: Any = Task.Registered  # type: ignore[attr-defined]
RECONFIGURED: Any = Task.Reconfigured  # type: ignore[attr-defined]
CONFIGURED: Any = Vault.Configured  # type: ignore[attr-defined]
VAULT_RECONFIGURED: Any = Vault.Reconfigured  # type: ignore[attr-defined]


def task_subject(name: str) -> str:
    return f"task:{name}"


def vault_digest(text_hash: str, sections: Mapping[str, str]) -> str:
    """One hash for vault.yml as recorded: its text hash and every section's hash."""
    canonical = json.dumps({"text": text_hash, "sections": dict(sections)}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ConfigRecordProjection(Projection):
    name: ClassVar[str] = "config_record"
    tables: ClassVar = (config_record_table,)
    handles: ClassVar = (REGISTERED, RECONFIGURED, CONFIGURED, VAULT_RECONFIGURED)

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        if isinstance(event, REGISTERED):
            self.origins.remember(event.originator_id, {"name": event.name})
            self._rows[task_subject(event.name)] = event.config_hash
        elif isinstance(event, RECONFIGURED):
            name = self.origins(event.originator_id).get("name")
            if name is not None:
                self._rows[task_subject(str(name))] = event.config_hash
        else:
            self._rows[VAULT] = vault_digest(event.text_hash, event.sections)

    def flush(self, conn: Connection) -> None:
        upsert(conn, config_record_table, [{"subject": s, "hash": h} for s, h in self._rows.items()], ["subject"])
        self._rows.clear()

    def reset(self) -> None:
        self._rows.clear()


def on_record(conn: Connection, subjects: Mapping[str, str]) -> bool:
    """Does every subject's hash match the one on record (`subjects`: subject → hash)?"""
    c = config_record_table.c
    found = dict(conn.execute(select(c.subject, c.hash).where(c.subject.in_(list(subjects)))).tuples().all())
    return found == dict(subjects)
