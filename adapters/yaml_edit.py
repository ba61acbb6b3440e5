"""Surgical edits of vault.yml text: change one value, add or drop one list item, keep everything else byte
for byte (comments, flow or block style, quoting, blank lines).

Why not load-and-dump: a dump rewrites the whole file (comments gone, flow mappings re-wrapped), so a one-knob
delta would show as a hundred-line diff a person cannot review. PyYAML's composer gives every node its start
and end offsets; an edit replaces exactly one node's span or inserts next to it. Every edit is checked by
re-parsing: the new document must equal the old one with only the intended change, else `YamlEditError`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = Sequence[str | int]


class YamlEditError(ValueError):
    """The edit cannot be made (a missing parent, a non-mapping on the way, a result that does not re-parse)."""


def _root(text: str) -> Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        raise YamlEditError("empty YAML document")
    return node


def _child(node: Node, key: str | int) -> tuple[Node, Node | None] | None:
    """(value node, key node) of `key` under `node`, or None when absent."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v, k
        return None
    if isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key], None
    return None


def _find(text: str, path: Path) -> tuple[Node | None, Node, int]:
    """(node at path or None, deepest existing ancestor node, how many path parts exist)."""
    node = _root(text)
    for depth, key in enumerate(path):
        hit = _child(node, key)
        if hit is None:
            return None, node, depth
        node = hit[0]
    return node, node, len(path)


def flow(value: Any) -> str:
    """A value as flow-style YAML text that is valid inside a flow or a block context (plain when it can be)."""
    if isinstance(value, str) and value.strip() == value and value and "#" not in value:
        try:
            if yaml.safe_load(f"[{value}]") == [value] and yaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    dumped = yaml.safe_dump([value], default_flow_style=True, width=10**9, allow_unicode=True, sort_keys=False)
    return dumped.strip()[1:-1].strip()


def _get(data: Any, path: Path) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {}) if isinstance(data, dict) else data[key]
    data[path[-1]] = value


def _checked(old: str, new: str, expect: Any) -> str:
    try:
        got = yaml.safe_load(new)
    except yaml.YAMLError as e:
        raise YamlEditError(f"the edited document does not parse: {e}") from None
    if got != expect:
        raise YamlEditError("the edit changed more than the intended value (refusing a lossy rewrite)")
    return new


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end + 1


def _block_end(text: str, node: Node) -> int:
    """Offset just after the last non-blank, non-comment line of a block node (its end mark may run past
    trailing blank lines and comments that belong to the next key)."""
    end = node.end_mark.index
    start = node.start_mark.index
    segment = text[start:end]
    lines = segment.split("\n")
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    last = start + len("\n".join(lines))
    return _line_end(text, max(start, last - 1))


def set_value(text: str, path: Path, value: Any) -> str:
    """Set `path` (e.g. ["tasks", "blog-drafter", "options", "num_predict"]) to `value`, creating missing keys
    under the deepest existing mapping (as a flow mapping when that mapping is flow style)."""
    if not path:
        raise YamlEditError("empty key path")
    expect = copy.deepcopy(yaml.safe_load(text))
    try:
        _set(expect, path, value)
    except (KeyError, IndexError, TypeError) as e:
        raise YamlEditError(f"cannot set {'.'.join(map(str, path))}: {e}") from None
    node, parent, depth = _find(text, path)
    if node is not None:
        if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
            new = text[: node.start_mark.index] + flow(value) + text[node.end_mark.index:]
        else:  # a block collection: replace it with a flow value on the key's line
            owner = _find(text, path[:-1])[0]
            hit = _child(owner, path[-1]) if owner is not None else None
            knode = hit[1] if hit else None
            if knode is None:
                raise YamlEditError(f"cannot replace the block value at {'.'.join(map(str, path))}")
            colon = text.index(":", knode.end_mark.index)
            new = text[: colon + 1] + " " + flow(value) + "\n" + text[_block_end(text, node):]
        return _checked(text, new, expect)
    if not isinstance(parent, MappingNode):
        raise YamlEditError(f"{'.'.join(map(str, path[:depth]))} is not a mapping")
    rest = list(path[depth:])
    nested: Any = value
    for part in reversed(rest[1:]):
        nested = {part: nested}
    first = rest[0]
    return _checked(text, _insert_key(text, parent, str(first), nested), expect)


def _insert_key(text: str, mapping: MappingNode, key: str, value: Any) -> str:
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the '}'
        sep = ", " if mapping.value else ""
        return text[:close].rstrip() + f"{sep}{flow(key)}: {flow(value)}" + text[close:]
    if not mapping.value:
        raise YamlEditError("cannot add a key to an empty block mapping")
    first_key = mapping.value[0][0]
    indent = " " * first_key.start_mark.column
    last_value = mapping.value[-1][1]
    at = _block_end(text, last_value) if not isinstance(last_value, ScalarNode) else _line_end(
        text, last_value.end_mark.index)
    if at > 0 and text[at - 1] != "\n":
        text, at = text[:at] + "\n" + text[at:], at + 1
    return text[:at] + f"{indent}{flow(key)}: {flow(value)}\n" + text[at:]


def remove_item(text: str, path: Path, value: Any) -> str:
    """Drop the first item equal to `value` from the list at `path`."""
    node, _, _ = _find(text, path)
    if not isinstance(node, SequenceNode):
        raise YamlEditError(f"{'.'.join(map(str, path))} is not a list")
    data = yaml.safe_load(text)
    items = _get(data, path)
    if value not in items:
        raise YamlEditError(f"{value!r} is not in {'.'.join(map(str, path))}")
    i = items.index(value)
    expect = copy.deepcopy(data)
    _get(expect, path).pop(i)
    item = node.value[i]
    if node.flow_style:
        if len(node.value) == 1:
            start, end = item.start_mark.index, item.end_mark.index
        elif i == 0:
            start, end = item.start_mark.index, node.value[1].start_mark.index
        else:
            start, end = node.value[i - 1].end_mark.index, item.end_mark.index
        return _checked(text, text[:start] + text[end:], expect)
    start = _line_start(text, item.start_mark.index)
    end = node.value[i + 1].start_mark.index if i + 1 < len(node.value) else _block_end(text, item)
    end = _line_start(text, end) if i + 1 < len(node.value) else end
    return _checked(text, text[:start] + text[end:], expect)


def add_item(text: str, path: Path, value: Any) -> str:
    """Append `value` to the list at `path` (which must exist)."""
    node, _, _ = _find(text, path)
    if not isinstance(node, SequenceNode):
        raise YamlEditError(f"{'.'.join(map(str, path))} is not a list")
    expect = copy.deepcopy(yaml.safe_load(text))
    _get(expect, path).append(value)
    if node.flow_style:
        close = node.end_mark.index - 1
        sep = ", " if node.value else ""
        return _checked(text, text[:close].rstrip() + sep + flow(value) + text[close:], expect)
    last = node.value[-1]
    dash = _line_start(text, last.start_mark.index)
    prefix = text[dash:last.start_mark.index]
    at = _block_end(text, last) if not isinstance(last, ScalarNode) else _line_end(text, last.end_mark.index)
    return _checked(text, text[:at] + prefix + flow(value) + "\n" + text[at:], expect)


def get_value(text: str, path: Path, default: Any = None) -> Any:
    try:
        return _get(yaml.safe_load(text), path)
    except (KeyError, IndexError, TypeError):
        return default


def block_text(text: str, path: Path) -> str:
    """The exact lines of the value at `path` with its key line (a task's block, for evidence)."""
    parent = _find(text, path[:-1])[0]
    hit = _child(parent, path[-1]) if parent is not None else None
    if hit is None or hit[1] is None:
        return ""
    value, key = hit
    assert key is not None
    start = _line_start(text, key.start_mark.index)
    end = _block_end(text, value) if not isinstance(value, ScalarNode) else _line_end(text, value.end_mark.index)
    return text[start:end]


__all__ = ["YamlEditError", "add_item", "block_text", "flow", "get_value", "remove_item", "set_value"]
