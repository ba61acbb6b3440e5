"""vault.yml text → plain data plus the line of every key, so each later error can point at its line.

PyYAML's composer gives nodes with marks; we build the data ourselves from them, which is also where
duplicate keys (silently last-wins in plain `yaml.safe_load`) become errors. Mapping keys stay the text
the user typed: a task called `on` or `1` is a string, not YAML 1.1's True or 1.

Hostile shapes fail fast with a line: nesting deeper than `MAX_DEPTH` (checked on the raw brackets, then on
the parser's events, before the recursive composer could exhaust the stack — PyYAML's parser is also
quadratic in flow nesting), and aliases that expand to more than `MAX_NODES` values (a "billion laughs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from adapters.config_errors import Issue, KeyPath

MAX_DEPTH = 32  # vault.yml needs about 6 levels
MAX_NODES = 20_000  # values after alias expansion; a large vault.yml has a few thousand
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")  # anything else would need a constructor


class YamlSyntaxError(ValueError):
    """The text is not YAML; carries the 1-based line, the column and a fix."""

    def __init__(self, line: int | None, message: str, fix: str) -> None:
        super().__init__(message)
        self.line, self.message, self.fix = line, message, fix


@dataclass
class YamlDoc:
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)  # key path → line of the key (or list item)
    issues: list[Issue] = field(default_factory=list)  # duplicate keys, odd keys
    nodes: int = 0  # values built so far, aliases expanded

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class _TooLarge(ValueError):
    def __init__(self, line: int | None, message: str, fix: str) -> None:
        super().__init__(message)
        self.line, self.message, self.fix = line, message, fix


_DEEP_FIX = "vault.yml needs a few levels of nesting; remove the extra brackets or indentation"


def compose_yaml(text: str) -> YamlDoc:
    """Parse one YAML document; raises YamlSyntaxError with the line and a fix."""
    try:
        _check_brackets(text)
        _check_depth(text)
        return _compose(text)
    except _TooLarge as e:
        raise YamlSyntaxError(e.line, e.message, e.fix) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = ", ".join(part for part in (e.context, e.problem) if part) or "not valid YAML"
        where = f" at column {mark.column + 1}" if mark else ""
        raise YamlSyntaxError(
            mark.line + 1 if mark else None, f"YAML syntax error{where}: {problem}", _fix(problem)
        ) from None
    except ReaderError as e:  # a control character: no mark, only a position
        line = text.count("\n", 0, e.position) + 1
        char = e.character if isinstance(e.character, int) else ord(e.character)
        raise YamlSyntaxError(line, f"YAML syntax error: control character #x{char:04x}", "remove it") from None


def _check_brackets(text: str) -> None:
    """Flow brackets open more than MAX_DEPTH deep, counted on the raw text (quotes and comments skipped), in
    one pass: the parser would take minutes on thousands of them."""
    depth, line, quote, comment = 0, 1, "", False
    prev = " "
    for ch in text:
        if ch == "\n":
            line, comment = line + 1, False
        elif comment:
            pass
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and prev in " \t[{,:":
            quote = ch
        elif ch == "#" and prev in " \t":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooLarge(line, f"brackets nested deeper than {MAX_DEPTH} levels", _DEEP_FIX)
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch


def _check_depth(text: str) -> None:
    """Nesting deeper than MAX_DEPTH (block or flow), from the parser's events, which need no recursion."""
    depth = 0
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else None
                    raise _TooLarge(line, f"nested deeper than {MAX_DEPTH} levels", _DEEP_FIX)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _compose(text: str) -> YamlDoc:
    loader = yaml.SafeLoader(text)  # checks for control characters right away
    try:
        root = loader.get_single_node()
        doc = YamlDoc(None)
        if root is not None:
            doc.lines[()] = root.start_mark.line + 1
            doc.data = _build(root, (), doc, loader, frozenset())
        return doc
    finally:
        loader.dispose()


def _fix(problem: str) -> str:
    if "\\t" in problem or "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "quote values that contain ': ' and check the indentation of this line"
    if "alias" in problem:
        return "define the anchor (&name) before using it (*name)"
    if "expected a single document" in problem:
        return "keep one YAML document in vault.yml (remove the extra '---')"
    if "constructor" in problem or "tag" in problem:
        return "remove the '!' tag; vault.yml takes plain strings, numbers, lists and mappings"
    return "check the indentation and quoting around this line"


def _build(node: Node, path: KeyPath, doc: YamlDoc, loader: yaml.SafeLoader, seen: frozenset[int]) -> Any:
    doc.nodes += 1
    if doc.nodes > MAX_NODES:
        raise _TooLarge(node.start_mark.line + 1, f"aliases (*name) expand to more than {MAX_NODES} values",
                        "use each anchor once or twice; a file that multiplies aliases is refused")
    if id(node) in seen:
        doc.issues.append(Issue(path, "an alias refers to a mapping that contains it", "remove the recursive alias"))
        return None
    if not isinstance(node, ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise ConstructorError(
            None, None, f"could not determine a constructor for the tag {node.tag!r}", node.start_mark
        )
    if isinstance(node, MappingNode):
        return _build_mapping(node, path, doc, loader, seen | {id(node)})
    if isinstance(node, SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines.setdefault((*path, i), item.start_mark.line + 1)
            items.append(_build(item, (*path, i), doc, loader, seen | {id(node)}))
        return items
    return loader.construct_object(node, deep=True)


def _build_mapping(
    node: MappingNode, path: KeyPath, doc: YamlDoc, loader: yaml.SafeLoader, seen: frozenset[int]
) -> dict[str, Any]:
    explicit = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
    first_line: dict[str, int] = {}
    for key_node, _ in explicit:
        if not isinstance(key_node, ScalarNode):
            line = key_node.start_mark.line + 1
            doc.issues.append(
                Issue(path, "a key must be plain text, not a list or mapping", "write the key as a word", line=line)
            )
            continue
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in first_line:
            doc.issues.append(
                Issue(
                    (*path, key),
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                    f"keep one {key!r} entry; YAML would silently use the last one",
                    line=line,
                )
            )
        first_line.setdefault(key, line)
    loader.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first, explicit keys win
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            continue
        key = key_node.value
        child = (*path, key)
        doc.lines[child] = key_node.start_mark.line + 1
        out[key] = _build(value_node, child, doc, loader, seen)
    return out
