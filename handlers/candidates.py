"""Which model to swap a task to: its candidates ranked by what they did on this task and whether their backend
can serve them now.

Order (best first):
1. models with recorded runs on this task that mostly pass its format contract, by pass rate then mean score;
2. models with no history on this task (a reachable backend before one that cannot be probed);
3. a coder model with no history on a prose task.
Never a candidate: the task's model itself, a model whose backend probe says down (unreachable, refusing, not
pulled), one whose runs mostly fail the contract, one the `wrong_model` signature names, and one a cycle already
swapped this task to (discarded, or kept and later reverted): after a discard the next one is tried, not the
same delta again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from eventsourcing.utils import get_topic

from adapters.backends.base import Health
from adapters.yaml_edit import get_value
from domain.aggregates import Cycle
from domain.delta_codec import delta_from_json
from handlers.diagnose_deps import DiagnoseDeps

CODER = re.compile(r"(?:coder|codellama|codegemma|codestral|starcoder|codeqwen|deepseek-code)", re.IGNORECASE)
PASSING = 0.5  # a model whose runs pass the contract at least this often has a good history here


@dataclass(frozen=True)
class Candidate:
    model: str
    health: str  # up | down | unknown
    detail: str
    runs: int
    pass_rate: float | None
    mean_score: float | None
    coder: bool
    excluded: str = ""  # why it is never a candidate ("" when it is one)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_coder(model: str) -> bool:
    return bool(CODER.search(model.split("@", 1)[0].rsplit("/", 1)[-1]))


def is_prose(config: Mapping[str, Any]) -> bool:
    expect = config.get("expect") or {}
    return bool(expect.get("prose", True)) and not expect.get("json_schema")


def rank(config: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]], *, bad: Iterable[str] = (),
         tried: Mapping[str, str] | None = None,
         probe: Callable[[str], Health] | None = None) -> list[Candidate]:
    """Every model of the pool and of the history, eligible ones first in rank order, excluded ones after."""
    current = str(config.get("model") or "")
    pool = [str(m) for m in config.get("candidates") or []]
    models = list(dict.fromkeys([*pool, *stats]))
    bad_set, tried = set(bad), dict(tried or {})
    prose = is_prose(config)
    out: list[tuple[tuple[Any, ...], Candidate]] = []
    for i, m in enumerate(models):
        st = stats.get(m) or {}
        runs = int(st.get("runs") or 0)
        rate = st.get("pass_rate") if runs else None
        health = probe(m) if probe is not None and m != current else Health("unknown", "not probed")
        coder = is_coder(m)
        why = ("the task's model" if m == current else
               f"backend down: {health.detail}" if health.down else
               f"already tried on this task ({tried[m]})" if m in tried else
               "misses the contract in its runs here" if m in bad_set or (
                   runs >= 2 and rate is not None and rate < PASSING) else "")
        group = 0 if runs and rate is not None and rate >= PASSING else (2 if coder and prose else 1)
        key = (bool(why), group, -(rate or 0.0), -(st.get("mean_score") or 0.0), health.status != "up", i)
        out.append((key, Candidate(m, health.status, health.detail, runs, rate, st.get("mean_score"), coder, why)))
    return [c for _, c in sorted(out, key=lambda kv: kv[0])]


def best(ranked: Iterable[Candidate]) -> Candidate | None:
    return next((c for c in ranked if not c.excluded), None)


MODEL_SIGNATURES = frozenset({"format_miss", "wrong_model", "identical_across_days", "dead_task"})


def for_evidence(task: str, config: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]],
                 signatures: Iterable[Any], deps: DiagnoseDeps) -> tuple[dict[str, Any], ...]:
    """The ranked pool for an evidence pack, probed and checked against earlier cycles; () unless a model
    signature is open and the task has a pool (probing costs requests)."""
    names = {getattr(s, "name", s) for s in signatures}
    if not (names & MODEL_SIGNATURES) or not config.get("candidates"):
        return ()
    bad: set[str] = set()
    for s in signatures:
        if getattr(s, "name", "") == "wrong_model":
            bad |= {str(m) for m in (getattr(s, "evidence", {}) or {}).get("bad") or []}
    try:
        tried = deps.cycles.swapped_models(task) if deps.cycles is not None else {}
    except Exception:  # the history filter is a refinement: an unreadable store leaves the pool whole
        tried = {}
    probe = deps.models.probe if deps.models is not None else None
    return tuple(c.as_dict() for c in rank(config, stats, bad=bad, tried=tried, probe=probe))


def tried_models(store: Any, task: str) -> dict[str, str]:
    """Models earlier cycles on `task` swapped it to (by any proposer), with how that cycle ended."""
    topics = {get_topic(Cycle.Started): "started", get_topic(Cycle.Proposed): "proposed",  # type: ignore[attr-defined]
              get_topic(Cycle.Kept): "kept", get_topic(Cycle.Discarded): "discarded",  # type: ignore[attr-defined]
              get_topic(Cycle.Failed): "failed"}  # type: ignore[attr-defined]
    mine: set[Any] = set()
    target: dict[Any, str] = {}
    out: dict[str, str] = {}
    start = 1
    while page := store.recorder.select_notifications(start, 1000, topics=list(topics)):
        for n in page:
            ev: Any = store.mapper.to_domain_event(n)
            kind = topics[n.topic]
            if kind == "started" and ev.task == task:
                mine.add(ev.originator_id)
            elif ev.originator_id not in mine:
                continue
            elif kind == "proposed" and ev.lever in ("model", "mixed") and ev.delta_blob:
                model = _swapped_to(store.blobs.get_text(ev.delta_blob), task)
                if model:
                    target[ev.originator_id] = model
            elif kind in ("kept", "discarded", "failed") and ev.originator_id in target:
                out[target[ev.originator_id]] = kind
        start = page[-1].id + 1
    return out


def _swapped_to(blob: str | None, task: str) -> str | None:
    if not blob:
        return None
    try:
        delta, before = delta_from_json(blob)
        for e in delta.edits:
            if e.in_config and e.after is not None:
                model = get_value(e.after, ["tasks", task, "model"])
                was = get_value(before.get(e.path) or "", ["tasks", task, "model"])
                return str(model) if model and model != was else None
    except (ValueError, KeyError, yaml.YAMLError):
        return None
    return None


__all__ = ["CODER", "MODEL_SIGNATURES", "Candidate", "best", "for_evidence", "is_coder", "is_prose", "rank",
           "tried_models"]
