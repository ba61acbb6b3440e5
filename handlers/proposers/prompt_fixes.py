"""Text transforms of a prompt template, one per failure the seed fixed in a prompt. Pure; None = not applicable.

Each returns the new template text. Rules go on their own line just before the `{context}` line (or at the
end), so the instruction part of the template grows and the data part stays where it was.
"""

from __future__ import annotations

import re

DO_NOT_COPY = "CRITICAL: DO NOT COPY the example — write about today's context."
NO_FENCES = "Do NOT output code fences."
NO_PLACEHOLDERS = ("Never output literal template placeholders (words in square brackets or curly braces); "
                   "write the real names.")

_EXAMPLE_START = re.compile(r"^\s*(?:#+\s*)?(?:an?\s+)?(?:example|for example|sample|example output)[^\n:]{0,40}:\s*$",
                            re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_LABEL = re.compile(r"^(?P<label>[A-Z][A-Za-z]*(?: [a-z]+){0,2}):\s+\S")
_LIST = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)")
_CONTEXT_LINE = re.compile(r"^[ \t]*\{context\}[ \t]*$", re.MULTILINE)
_BRACKET_SLOT = re.compile(r"(?<![\[!\w])\[([A-Za-z][A-Za-z]+(?:[ _/-][A-Za-z]+){0,8})\](?![\[(\]:])")
_CURLY_SLOT = re.compile(r"(?<![\w\\{$])\{([A-Za-z_][\w-]{0,40})\}(?!\})")
_KNOWN_CURLY = frozenset({"context", "date"})
_FENCE_LINE = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n?", re.MULTILINE)
_CONDITIONAL = re.compile(
    r"\s*\((?:or|else)\s+[\"'‘“](?P<alt>[^\"'’”)\n]{1,80})[\"'’”]\s*(?:if|when)\s+(?P<cond>[^)\n]{1,40})\)")
_TOOL = re.compile(r"\buse (?:the )?(?P<tool>[A-Z]\w*) tool to (?:create|write|save|make) (?P<target>\S+)",
                   re.IGNORECASE)


def add_rule(text: str, rule: str) -> str:
    """Insert `rule` as its own line before `{context}` (or append it); unchanged when already present."""
    if rule in text:
        return text
    m = _CONTEXT_LINE.search(text)
    if m is None:
        return text.rstrip("\n") + "\n\n" + rule + "\n"
    head = text[: m.start()].rstrip("\n")
    return head + "\n\n" + rule + "\n\n" + text[m.start():]


def example_block(text: str) -> tuple[int, int] | None:
    """(first, last) 0-based line indexes of the body of an 'Example:' block: up to a blank line or {context}."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _EXAMPLE_START.match(line):
            j = i + 1
            while j < len(lines) and lines[j].strip() and not _CONTEXT_LINE.match(lines[j]):
                j += 1
            if j > i + 1:
                return i + 1, j - 1
    return None


def _structure_sentences(body: str) -> str:
    """Concrete prose reduced to its shape: a leading date headline and 'Label:' prefixes kept, content → <...>."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", body.strip()):
        if not sentence:
            continue
        date = _DATE.match(sentence)
        label = _LABEL.match(sentence)
        if date:
            rest = sentence[date.end():].lstrip(" :—-")
            out.append("<YYYY-MM-DD>: <headline naming today's theme>" if rest else "<YYYY-MM-DD>")
        elif label:
            out.append(f"{label.group('label')}: <...>.")
        elif not out or out[-1] != "<...>":
            out.append("<...>")
    return " ".join(out)


def _structure(lines: list[str]) -> list[str]:
    """Headings and list markers kept; each paragraph (or list item) becomes one structure line. A first line
    that is a dated headline stays a line of its own."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(_structure_sentences(" ".join(x.strip() for x in para)))
            para.clear()

    for i, line in enumerate(lines):
        lead = _LIST.match(line)
        if _HEADING.match(line) or not line.strip():
            flush()
            out.append(line)
        elif lead:
            flush()
            out.append(lead.group(1) + _structure_sentences(line[lead.end():]))
        elif i == 0 and _DATE.match(line.strip()):
            out.append(_structure_sentences(line))
        else:
            para.append(line)
    flush()
    return out


def structure_only_example(text: str) -> str | None:
    """Replace the concrete example with its structure and add the do-not-copy rule (session-reflection)."""
    span = example_block(text)
    if span is None or DO_NOT_COPY in text:
        return None
    lines = text.split("\n")
    first, last = span
    new_body = _structure(lines[first: last + 1])
    if new_body == lines[first: last + 1]:
        return None
    return "\n".join([*lines[:first], *new_body, DO_NOT_COPY, *lines[last + 1:]])


def example_lines(text: str) -> list[str]:
    span = example_block(text)
    if span is None:
        return []
    return text.split("\n")[span[0]: span[1] + 1]


def remove_fences(text: str) -> str | None:
    """Drop fence lines (keeping what they wrapped) and forbid fences (research-radar)."""
    unfenced = _FENCE_LINE.sub("", text)
    out = add_rule(unfenced, NO_FENCES)
    return None if out == text else out


def bracket_slots(text: str) -> list[str]:
    found = [m.group(0) for m in _BRACKET_SLOT.finditer(text)]
    found += [m.group(0) for m in _CURLY_SLOT.finditer(text) if m.group(1) not in _KNOWN_CURLY]
    return list(dict.fromkeys(found))


def describe_slots(text: str) -> str | None:
    """`[Tool]` / `{var}` template slots become `<tool>`-style descriptions, plus a no-placeholder rule."""
    slots = bracket_slots(text)
    if not slots:
        return None

    def describe(m: re.Match[str]) -> str:
        return "<" + m.group(1).replace("_", " ").lower() + ">"

    out = _BRACKET_SLOT.sub(describe, text)
    out = _CURLY_SLOT.sub(lambda m: m.group(0) if m.group(1) in _KNOWN_CURLY else describe(m), out)
    return add_rule(out, NO_PLACEHOLDERS)


def plain_conditionals(text: str) -> str | None:
    """`… (or 'quiet — no commits' if 0).` → the instruction without the parenthetical, and the condition as
    its own sentence on the next line (morning-briefing)."""
    if not _CONDITIONAL.search(text):
        return None
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        m = _CONDITIONAL.search(line)
        if m is None:
            out.append(line)
            continue
        out.append(line[: m.start()] + line[m.end():])
        cond = m.group("cond").strip()
        when = ("If there are none" if cond.lower() in {"0", "none", "zero", "empty", "nothing", "no", "there are none"}
                else f"If {cond}")
        out.append(f"{when}, write exactly this line instead: {m.group('alt').strip()}")
    return "\n".join(out)


def block_header(regex: str) -> tuple[str, str] | None:
    """('=== PRACTICE NOTE: ', ' ===') from '^=== PRACTICE NOTE: (.+) ===$': literal text around one group."""
    m = re.fullmatch(r"\^?(?P<pre>(?:[^\\()\[\]^$.*+?{}|]|\\.)*)\((?:\?P<\w+>)?\.[+*]\??\)"
                     r"(?P<post>(?:[^\\()\[\]^$.*+?{}|]|\\.)*)\$?", regex)
    if m is None:
        return None
    unescape = lambda s: re.sub(r"\\(.)", r"\1", s)  # noqa: E731
    pre, post = unescape(m.group("pre")), unescape(m.group("post"))
    return (pre, post) if len(pre.strip()) >= 3 else None


def shows_format(prompt: str, regex: str) -> bool:
    """Does the prompt spell out the block header the contract wants (so a miss is the model's fault)?"""
    header = block_header(regex)
    if header is not None:
        return header[0].strip() in prompt
    literal = re.sub(r"[\\^$()\[\].*+?{}|]", "", regex).strip()
    return len(literal) >= 4 and literal in prompt


def blocks_instead_of_tool(text: str, regex: str) -> str | None:
    """'use the Write tool to create X' (a tool the task cannot call) → output blocks a postprocessor saves."""
    m = _TOOL.search(text)
    header = block_header(regex)
    if m is None or header is None:
        return None
    out = text[: m.start()] + "write one note" + text[m.end():]
    fmt = (f"Output each note as a block: a line {header[0]}<title>{header[1]}, then the note's text. Nothing before "
           f"the first block. Do not call any tool; the blocks are saved as files for you.")
    return add_rule(out, fmt)


def require_size(text: str, min_words: int | None, min_facts: int | None, facts_section: str | None) -> str | None:
    """Make the producer's size explicit from its consumer's `requires` (blog-drafter → blog-writer)."""
    if not min_words and not min_facts:
        return None
    facts_rule = (f"At least {min_facts} bullets, each one specific fact: a filename, a measurable metric with its "
                  f"number, or a named tool or version — no category tags." if min_facts else "")
    out = text
    if facts_rule and facts_section:
        title = facts_section.lstrip("#").strip().lower()
        lines = out.split("\n")
        for i, line in enumerate(lines):
            if _HEADING.match(line) and line.lstrip("#").strip().lower() == title:
                j = i + 1
                while j < len(lines) and lines[j].strip() and not _HEADING.match(lines[j]):
                    j += 1
                lines[i + 1: j] = [facts_rule]
                out = "\n".join(lines)
                facts_rule = ""
                break
    if facts_rule:
        out = add_rule(out, facts_rule)
    if min_words:
        out = add_rule(out, f"Write at least {min_words} words in total; the reader needs the detail.")
    return None if out == text else out


__all__ = ["DO_NOT_COPY", "NO_FENCES", "NO_PLACEHOLDERS", "add_rule", "block_header", "blocks_instead_of_tool",
           "bracket_slots", "describe_slots", "example_block", "example_lines", "plain_conditionals",
           "remove_fences", "require_size", "shows_format", "structure_only_example"]
