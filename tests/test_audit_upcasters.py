"""Upcasters: every event class that changed shape (class_version > 1) reads events stored in its older shapes —
found by looking, so a class that gains a version is tested without a new test — and old-shaped cycles still
load, replay and fold into the ledger."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import types
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

import domain.aggregates as aggregates
from adapters.eventstore import VaultStore
from domain.aggregates import Cycle, Task
from projections.cycle_facts import CycleFactsProjection, descriptions, verified_in
from projections.ledger import LedgerProjection, ledger_rows
from projections.runner import ProjectionRunner


def versioned() -> Iterator[type]:
    for agg in vars(aggregates).values():
        if isinstance(agg, type) and issubclass(agg, Aggregate) and agg is not Aggregate:
            for cls in vars(agg).values():
                if isinstance(cls, type) and issubclass(cls, Aggregate.Event) and getattr(cls, "class_version", 1) > 1:
                    yield cls


VERSIONED = sorted(versioned(), key=lambda c: c.__qualname__)


def sample(annotation: Any) -> Any:
    """A value of the annotated type (the first alternative of a union that is not None)."""
    hint = annotation if not isinstance(annotation, str) else eval(annotation, vars(aggregates) | vars(typing))
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in typing.get_args(hint) if a is not type(None)))
    base = origin or hint
    return {str: "text", int: 7, float: 1.5, bool: True, dict: {"k": 1}, list: ["a"]}.get(base, "text")


def own_fields(cls: type) -> dict[str, Any]:
    """The fields the event class declares (the library subclasses a decorated event class: look down its MRO)."""
    out: dict[str, Any] = {}
    for c in reversed(cls.__mro__):
        if c.__qualname__ == cls.__qualname__:
            out.update(inspect.get_annotations(c))
    return {k: v for k, v in out.items() if not k.startswith("_")}


def added_by_upcasters(cls: type) -> dict[str, Any]:
    """The fields the upcasters fill (run on an empty v1 state)."""
    state: dict[str, Any] = {}
    for v in range(1, cls.class_version):  # type: ignore[attr-defined]
        getattr(cls, f"upcast_v{v}_v{v + 1}")(state)
    return state


def test_every_versioned_class_is_found() -> None:
    names = {c.__qualname__ for c in VERSIONED}
    assert {"Task.Ran", "Cycle.Diagnosed", "Cycle.Proposed", "Cycle.Verified"} <= names


@pytest.mark.parametrize("cls", VERSIONED, ids=lambda c: c.__qualname__)
def test_an_event_stored_in_the_first_shape_reads_as_the_current_one(cls: type, tmp_path: Path) -> None:
    fields = own_fields(cls)
    filled = added_by_upcasters(cls)
    assert filled and set(filled) <= set(fields), f"{cls.__qualname__}: upcasters must fill declared fields"
    state = {k: sample(v) for k, v in fields.items() if k not in filled}
    state["timestamp"] = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    if issubclass(cls, Aggregate.Created):
        state["originator_topic"] = get_topic(type(cls.__qualname__.split(".")[0], (), {}))
    with VaultStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        stored = StoredEvent(uuid.uuid4(), 1, get_topic(cls), store.mapper.transcoder.encode(state))
        event = store.mapper.to_domain_event(stored)
    for name in fields:
        assert hasattr(event, name), f"{cls.__qualname__} read from v1 lacks {name}"
    expected = dict(state)
    for v in range(1, cls.class_version):  # type: ignore[attr-defined]
        getattr(cls, f"upcast_v{v}_v{v + 1}")(expected)
    for name in filled:
        assert getattr(event, name) == expected[name]


def test_a_ran_event_stored_by_early_v2_gets_the_fields_v2_grew_later(tmp_path: Path) -> None:
    state = {k: sample(v) for k, v in own_fields(Task.Ran).items() if k not in ("context_hash", "blocks")}
    state.update(timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), class_version=2, source="log")
    with VaultStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        event: Any = store.mapper.to_domain_event(
            StoredEvent(uuid.uuid4(), 2, get_topic(Task.Ran), store.mapper.transcoder.encode(state)))
    assert (event.context_hash, event.blocks, event.source) == (None, 0, "log")


def test_a_cycle_recorded_in_v1_shapes_loads_replays_and_folds(tmp_path: Path) -> None:
    with VaultStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        key = "brief-old"
        cid = Cycle.create_id(key)
        t0 = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
        shapes: list[tuple[Any, dict[str, Any]]] = [
            (Cycle.Started, {"timestamp": t0, "originator_topic": get_topic(Cycle), "key": key, "task": "brief",  # type: ignore[attr-defined]
                             "mode": "cycle", "target": None, "trigger": "cli"}),
            (Cycle.Diagnosed, {"timestamp": t0, "signatures": ["sections"], "evidence_hash": "e", "tasks": ["brief"]}),
            (Cycle.Proposed, {"timestamp": t0, "delta_hash": "d", "proposer": "rules", "lever": "prompt",
                              "rationale": "add Goals", "cost": {}}),
            (Cycle.Verified, {"timestamp": t0, "baseline": [4.0], "candidate": [5.0], "effect": 1.0,
                              "interval": [0.5, 1.5], "decision": "keep", "rule": {}, "guardrails": [], "cost": {}}),
        ]
        store.recorder.insert_events([StoredEvent(cid, i + 1, get_topic(cls), json.dumps(state).encode())
                                      for i, (cls, state) in enumerate(shapes)])
        cycle = store.get_cycle(key)
        assert cycle is not None and cycle.phase == "verified" and cycle.delta_blob is None
        runner = ProjectionRunner(store, [LedgerProjection(), CycleFactsProjection()])
        runner.catch_up()
        with store.engine.connect() as conn:
            assert verified_in(conn, "d", "any baseline") == key  # v1 knew no baseline: it blocks every one
            assert descriptions(conn) == {key: "add Goals"}  # no description in v1: the rationale
            rows = ledger_rows(conn)
        assert [(r.kind, r.decision) for r in rows] == [("Proposed", "proposed"), ("Verified", "keep")]
        assert rows[-1].effect == 1.0 and rows[-1].lever == "prompt"
