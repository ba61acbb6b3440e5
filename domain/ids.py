"""Stable ids: the same name always maps to the same aggregate, across machines and replays."""

from __future__ import annotations

import hashlib
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c1b52-3c5e-5d1a-9a77-1f0a2f7d5a01")


def task_id(name: str) -> UUID:
    return uuid5(NAMESPACE, f"task:{name}")


def cycle_id(key: str) -> UUID:
    return uuid5(NAMESPACE, f"cycle:{key}")


def experiment_id(key: str) -> UUID:
    return uuid5(NAMESPACE, f"experiment:{key}")


def finding_id(kind: str, subject: str) -> UUID:
    return uuid5(NAMESPACE, f"finding:{kind}:{subject}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vault_id() -> UUID:
    """The one vault.yml of a store (a store holds one vault's history)."""
    return uuid5(NAMESPACE, "vault")


def judge_id(task: str) -> UUID:
    return uuid5(NAMESPACE, f"judge:{task}")


def audit_id(key: str) -> UUID:
    return uuid5(NAMESPACE, f"audit:{key}")
