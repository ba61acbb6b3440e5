"""Structured edits in an LLM's answer, turned into whole-file texts before validation: a config knob
(`options.num_predict` …), a model swap within the task's candidates, a change of the candidate pool, training
examples added to or removed from a data file. The model names what to change; the text is written here
(`adapters.yaml_edit` keeps the rest of vault.yml byte for byte), so a knob cannot break the YAML around it.

Each becomes a `content` edit of the file it touches, checked afterwards like any other edit (scope, only
`tasks.<task>` changed, the judge untouched). A structured edit and a search/replace edit may not touch the same
file in one answer: which of them would see the other's text is not something a model should have to guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.backends.base import parse_model
from adapters.yaml_edit import YamlEditError, get_value, set_value
from handlers.proposers.validate import Known, Rejected, Scope, clean_path

CONFIG_KINDS = frozenset({"option", "model", "candidates"})
DATA_KINDS = frozenset({"data_add", "data_remove"})


def expand(answer: Mapping[str, Any], known: Known, scope: Scope, task: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The answer with every structured edit replaced by one `content` edit per touched file, and the training
    lines it declares {added, removed} (the data audit holds a delta to what it declared)."""
    edits = list(answer["edits"])
    if not any("kind" in e for e in edits):
        return dict(answer), {}
    texts: dict[str, str] = {}
    order: list[str] = []
    plain_paths = {_plain_path(e, scope) for e in edits if "kind" not in e}
    counts = {"added": 0, "removed": 0}
    for raw in edits:
        kind = raw.get("kind")
        if kind is None:
            continue
        path = scope.config_name if kind in CONFIG_KINDS else clean_path(str(raw["path"]))
        if path in plain_paths:
            raise Rejected("mixed", f"{path}: a structured {kind} edit and a search/replace edit touch the same file")
        if path not in texts:
            if path not in known.files:
                raise Rejected("not_in_evidence", f"{path} was not in the evidence: its text is unknown")
            if path in known.clipped:
                raise Rejected("clipped", f"{path}: the evidence held only an excerpt of it")
            texts[path] = known.files[path][0]
            order.append(path)
        if kind in CONFIG_KINDS:
            texts[path] = _config(kind, raw, texts[path], task, scope.config_name)
        else:
            texts[path], n = _data(kind, raw, texts[path], path)
            counts["added" if kind == "data_add" else "removed"] += n
    expanded = [e for e in edits if "kind" not in e]
    expanded += [{"path": p, "in_config": p == scope.config_name, "content": texts[p]} for p in order]
    return {**answer, "edits": expanded}, {k: v for k, v in counts.items() if v}


def _plain_path(edit: Mapping[str, Any], scope: Scope) -> str:
    try:
        return clean_path(str(edit.get("path", "")))
    except Rejected:
        return ""  # the plain edit's own check rejects it with its reason


def _config(kind: str, raw: Mapping[str, Any], text: str, task: str, config_name: str) -> str:
    block = ["tasks", task]
    if get_value(text, block) is None:
        raise Rejected("config_scope", f"{config_name} has no task {task!r}")
    try:
        if kind == "option":
            return set_value(text, [*block, "options", str(raw["option"])], raw["value"])
        pool = [str(m) for m in get_value(text, [*block, "candidates"]) or []]
        if kind == "model":
            model = _spec(str(raw["model"]))
            if model not in pool:
                raise Rejected("model", f"{model} is not in tasks.{task}.candidates ({', '.join(pool) or 'empty'}): "
                                        "a swap picks a model the pool already names")
            return set_value(text, [*block, "model"], model)
        drop = {_spec(str(m)) for m in raw.get("drop") or []}
        add = [_spec(str(m)) for m in raw.get("add") or [] if _spec(str(m)) not in pool]
        if drop - set(pool):
            raise Rejected("model", f"cannot drop {', '.join(sorted(drop - set(pool)))}: not in tasks.{task}.candidates")
        if get_value(text, [*block, "model"]) in drop:
            raise Rejected("model", "cannot drop the task's own model from its candidates; swap the model first")
        return set_value(text, [*block, "candidates"], [m for m in pool if m not in drop] + add)
    except YamlEditError as e:
        raise Rejected("config_scope", f"{config_name}: {e}") from None


def _spec(model: str) -> str:
    try:
        parse_model(model)
    except ValueError as e:
        raise Rejected("model", f"{model!r} is not a model spec: {e}") from None
    return model


def _data(kind: str, raw: Mapping[str, Any], text: str, path: str) -> tuple[str, int]:
    if not path.endswith(".jsonl"):
        raise Rejected("not_editable", f"{path}: training examples live in JSONL files")
    lines = text.split("\n")
    if kind == "data_add":
        examples = [dict(e) for e in raw["examples"]]
        body = text if not text or text.endswith("\n") else text + "\n"
        return body + "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples), len(examples)
    numbers = sorted({int(n) for n in raw["lines"]})
    bad = [n for n in numbers if n > len(lines) or not lines[n - 1].strip()]
    if bad:
        raise Rejected("data_lines", f"{path}: line(s) {', '.join(map(str, bad[:5]))} hold no example "
                                     f"(the file has {sum(1 for ln in lines if ln.strip())} examples)")
    drop = set(numbers)
    return "\n".join(ln for i, ln in enumerate(lines, start=1) if i not in drop), len(numbers)


__all__ = ["expand"]
