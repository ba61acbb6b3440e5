"""The parts of a prompt template that small models misread, found by their structure, not by their wording.

A template mixes instructions (what to do) with a picture of the answer (headings, format lines, an example).
Small models copy the picture: a concrete example becomes the answer, a `[Slot]`, `<name>`, `{var}` or `___` in
a format line reaches the output literally, a fence shown becomes a fenced answer, a conditional aside such as
"(or 'none' if empty)" is written out with the rest of its line, and a tool the task cannot call is "called" in
prose. These finders say where each part is, so a detector (`domain.checks`) and a fixer
(`handlers.proposers.prompt_fixes`) agree on what the parts are. Pure; line indexes are 0-based.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

RENDERED = frozenset({"context", "date"})  # `{…}` names `domain.render` fills: not slots
CONTEXT_LINE = re.compile(r"^[ \t]*\{context\}[ \t]*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
LIST_ITEM = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)")
QUOTE = r"[\"'‘“`]"
UNQUOTE = r"[\"'’”`]"

# ---- fences ----------------------------------------------------------------------------------------------

FENCE_LINE = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:[-*+][ \t]+)?(?P<mark>`{3,}|~{3,})(?P<info>[^`\n]*)$")
PRE_LINE = re.compile(r"^\s*</?(?:pre|code)(?:\s[^>]*)?>\s*$", re.IGNORECASE)
# Words that ask for a fenced answer: "in a markdown code block", "inside triple backticks", "as a ```md block".
FENCE_REQUEST = re.compile(
    r"\b(?:in|inside|within|into|as|using|with|wrapped\s+in|wrap(?:ped)?\s+(?:it|them|this|the\s+\w+)\s+in)\s+"
    r"(?:a\s+|an\s+|one\s+|the\s+)?(?:single\s+)?(?:markdown\s+|md\s+|text\s+|fenced\s+)?"
    r"(?:code[\s-]*(?:block|fence)s?|fenced\s+blocks?|triple[\s-]+backticks|backtick\s+fences?|"
    r"`{3}\s*\w*(?:\s+(?:code\s+)?(?:block|fence))?|~{3}\s*\w*(?:\s+(?:block|fence))?)",
    re.IGNORECASE)
INLINE_FENCE = re.compile(r"`{3,}\w*|~{3,}\w*")


def fence_lines(text: str) -> list[int]:
    """Lines that open or close a fenced (or <pre>) block: what a model imitates by fencing its answer."""
    return [i for i, line in enumerate(text.split("\n")) if FENCE_LINE.match(line) or PRE_LINE.match(line)]


def fence_requests(text: str) -> list[tuple[int, str]]:
    """(line, phrase) of every sentence that asks for a code block in words or inline backticks."""
    out = []
    for i, line in enumerate(text.split("\n")):
        if FENCE_LINE.match(line):
            continue
        out += [(i, m.group(0)) for m in FENCE_REQUEST.finditer(line)]
        out += [(i, m.group(0)) for m in INLINE_FENCE.finditer(line) if not FENCE_REQUEST.search(line)]
    return out


def shows_fences(text: str) -> bool:
    return bool(fence_lines(text) or fence_requests(text))


# ---- example sections ------------------------------------------------------------------------------------

_ANSWER_NOUN = (r"(?:output|answer|response|reply|entry|entries|note|briefing|report|summary|digest|week|day|plan|"
                r"format|text|email|letter|message|result|post|page|run|log)")
# "example", "e.g."; "sample" only as "sample output" / "Sample:" ("## Samples" in a lab vault is a section).
_EXAMPLE_WORD = (r"(?:examples?|illustrations?|e\.g\.|samples?(?=\s+" + _ANSWER_NOUN + r"\b)|sample(?=\s*[:—–]))")
# A label line: "Example:", "Example output —", "Here is an example of a good answer:", "For example:",
# "**Sample output:**", "Example (format only): 2026-03-10: …" (inline content after the label).
_SHOWN = r"(?:for\s+instance|like\s+this(?:\s+one)?|like\s+so|such\s+as\s+this)"  # "…looks like this:"
_LABEL = re.compile(
    r"^\s*(?:[*_]{1,2}|>\s*)?(?P<pre>(?:[\w'’,-]+\s+){0,7}?)(?:" + _EXAMPLE_WORD + r"|" + _SHOWN + r")"
    r"(?P<rest>\b[^\n:—–]{0,60}?)\s*(?:[*_]{1,2})?\s*(?::|—|–|-{1,2}(?=\s)|\.\.\.|…)\s*(?:[*_]{1,2})?\s*"
    r"(?P<inline>.*)$",
    re.IGNORECASE)
# A short title line without a colon: "Sample output", "An example week", "Example briefing".
_TITLE = re.compile(r"^\s*(?:(?:an?|the|one)\s+)?(?:\w+\s+){0,2}?" + _EXAMPLE_WORD + r"(?:\s+[\w'()-]+){0,4}\s*$",
                    re.IGNORECASE)
_XML_OPEN = re.compile(r"^\s*<(example|sample|output_example|example_output)(?:\s[^>]*)?>\s*(?P<inline>.*)$",
                       re.IGNORECASE)
_END = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|(?:end of (?:the )?(?:example|sample))\.?|</\w+>)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ExampleSection:
    """An example the template shows: its head line (label, heading or tag), the body lines [first, last],
    inline text on the head line after the label, and the end marker line (---, </example>) if any."""

    head: int
    first: int
    last: int
    inline: str = ""
    end: int | None = None
    fenced: bool = False

    def lines(self, text: str) -> list[str]:
        body = text.split("\n")[self.first: self.last + 1]
        return ([self.inline] if self.inline.strip() else []) + body


def _is_head(line: str) -> tuple[str, str] | None:
    """(kind, inline text) when `line` introduces an example: heading | label | title | tag."""
    h = HEADING.match(line)
    if h:
        return ("heading", "") if re.search(r"\b" + _EXAMPLE_WORD, h.group(2), re.IGNORECASE) else None
    if (m := _XML_OPEN.match(line)) is not None:
        return "tag", m.group("inline")
    m = _LABEL.match(line)
    if m is not None and len((m.group("rest") or "").split()) <= 8:
        inline = m.group("inline").strip()
        if inline and re.match(r"^(?:write|use|the|this|follow|do|don't|never)\b", inline, re.IGNORECASE):
            return None  # "For example: write …" is an instruction, not an example
        return "label", m.group("inline")
    if _TITLE.match(line) and not line.rstrip().endswith((".", "?", "!", ",")):
        return "title", ""
    return None


def _fence_end(lines: Sequence[str], start: int) -> int:
    mark = FENCE_LINE.match(lines[start])
    assert mark is not None
    for k in range(start + 1, len(lines)):
        close = FENCE_LINE.match(lines[k])
        if close and close.group("mark")[0] == mark.group("mark")[0] and not close.group("info").strip():
            return k
    return len(lines) - 1


def _structural(line: str) -> bool:
    return bool(HEADING.match(line) or LIST_ITEM.match(line) or re.match(r"^\s*\|", line)
                or re.match(r"^\s*(?:={2,}|\*\*)", line))


def _body_end(lines: Sequence[str], start: int, kind: str, level: int) -> tuple[int, int | None]:
    """(last body line, end-marker line or None) of an example whose body starts at `start`."""
    j = start
    last = start - 1
    seen_heading = False
    while j < len(lines):
        line = lines[j]
        if CONTEXT_LINE.match(line) or (kind == "tag" and re.match(r"^\s*</", line)) or _END.match(line):
            return last, (j if not CONTEXT_LINE.match(line) else None)
        h = HEADING.match(line)
        if h and kind == "heading" and len(h.group(1)) <= level and not seen_heading and j > start:
            return last, None
        if h:
            seen_heading = True
        if not line.strip():
            nxt = next((k for k in range(j + 1, len(lines)) if lines[k].strip()), None)
            if kind == "tag":
                j += 1
                continue
            if nxt is None or (kind == "label" and not (seen_heading and _structural(lines[nxt]))):
                return last, None
            if kind == "title" and not _structural(lines[nxt]):
                return last, None
            after = HEADING.match(lines[nxt])
            if kind == "heading" and after is not None and len(after.group(1)) <= level and not seen_heading:
                return last, None
        else:
            last = j
        j += 1
    return last, None


def example_sections(text: str) -> list[ExampleSection]:
    """Every example the template shows, in order: labelled ('Example:', 'Sample output —', 'Here is an
    example:'), titled ('### Example week', 'Sample output'), tagged (<example>…</example>), or fenced after
    any of those. A body runs to an end marker (---, 'End of example', a closing tag), `{context}`, the next
    heading of the example heading's level, or a blank line after which the answer's structure does not go on."""
    lines = text.split("\n")
    out: list[ExampleSection] = []
    i = 0
    while i < len(lines):
        head = _is_head(lines[i])
        if head is None:
            i += 1
            continue
        kind, inline = head
        j = i + 1
        while j < len(lines) and not lines[j].strip() and kind in ("heading", "tag", "title"):
            j += 1
        if j < len(lines) and FENCE_LINE.match(lines[j]) and not inline.strip():
            end = _fence_end(lines, j)
            if end > j + 1:
                out.append(ExampleSection(i, j + 1, end - 1, "", end, fenced=True))
            i = end + 1
            continue
        level = len(HEADING.match(lines[i]).group(1)) if kind == "heading" else 7  # type: ignore[union-attr]
        last, end_marker = _body_end(lines, j, kind, level)
        if kind == "title" and last < j:
            i += 1
            continue
        if last >= j or inline.strip():
            out.append(ExampleSection(i, j, max(last, j - 1), inline, end_marker))
            i = max(last, j - 1, end_marker or 0) + 1
            continue
        i += 1
    return out


def example_span_of(text: str, quoted: Iterable[str]) -> tuple[int, int] | None:
    """(first, last) lines of the paragraph or block that holds the lines an output copied from the template:
    where the example is when nothing labels it (found by measurement: what the model reproduced)."""
    lines = text.split("\n")
    flat = [" ".join(line.casefold().split()) for line in lines]
    hits = sorted({i for q in quoted if (fq := " ".join(q.casefold().split()[:12])) and len(fq) >= 12
                   for i, line in enumerate(flat) if fq in line})
    if not hits:
        return None
    first, last = hits[0], hits[-1]
    while first > 0 and lines[first - 1].strip() and not CONTEXT_LINE.match(lines[first - 1]) \
            and not _is_head(lines[first - 1]):
        first -= 1
    while last + 1 < len(lines) and lines[last + 1].strip() and not CONTEXT_LINE.match(lines[last + 1]):
        last += 1
    return first, last


# ---- slots -----------------------------------------------------------------------------------------------

# [Tool], [Payee]:, [One line on why it matters], [insert date] — not links [a](u), references [a][1] or
# "[a]: http…", wiki links [[a]], callouts [!NOTE], footnotes [^1], checkboxes [x], citations [1] / [Smith 2020].
_BRACKET = re.compile(r"(?<![\[!\w\\])\[(?P<body>[A-Za-z][^\[\]\n]{0,70})\](?![\[(\]])(?!:\s*(?:<?https?://|/|#))")
_CITATION = re.compile(r"^[A-Z][a-z]+(?: et al\.?)?,? \d{4}[a-z]?$|^[xX ]$")
# <name>, <YYYY-MM-DD>, <one line on why> — not HTML tags, autolinks or comments.
_ANGLE = re.compile(r"(?<![<\w])<(?P<body>[A-Za-z.][^<>\n=]{0,70}?)>(?!>)")
_HTML = frozenset(["a", "abbr", "b", "br", "code", "details", "div", "em", "example", "hr", "i", "img", "kbd", "li",
                   "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th",
                   "thead", "tr", "u", "ul", "sample", "output_example", "example_output"])
_CURLY = re.compile(r"(?<![\w\\{$^}])\{(?P<body>[A-Za-z_][\w -]{0,40})\}(?!\})")
_JINJA = re.compile(r"\{\{\s*(?P<body>[A-Za-z_][\w. ]{0,40}?)\s*\}\}")
_BLANK = re.compile(r"(?<![\w_])(?P<body>_{3,})(?![\w_])|(?<![\w])(?P<xs>X{2,}(?:[:./-]X{2,})*)(?![\w])")


@dataclass(frozen=True)
class Slot:
    line: int
    start: int  # column in the line
    end: int
    text: str  # as written: "[Tool]", "<name>", "{payee}", "___"
    name: str  # what belongs there, in words: "tool", "name", "payee", "" for a bare blank
    shape: str  # bracket | angle | curly | jinja | blank


def _name(body: str) -> str:
    words = re.sub(r"[_\s]+", " ", body.strip(" .:")).strip()
    return words if words.isupper() and len(words) > 4 else (words[:1].lower() + words[1:] if words else "")


def _line_slots(i: int, line: str, known: frozenset[str]) -> list[Slot]:
    found: list[Slot] = []
    for m in _BRACKET.finditer(line):
        body = m.group("body")
        if _CITATION.match(body) or body.startswith("^"):
            continue
        found.append(Slot(i, m.start(), m.end(), m.group(0), _name(body), "bracket"))
    for m in _ANGLE.finditer(line):
        body = m.group("body").strip()
        tag = body.lower().rstrip("/ ") if len(body.split()) == 1 else ""
        if tag in _HTML or "://" in body or body.startswith(("!", "/")) or "@" in body:
            continue
        found.append(Slot(i, m.start(), m.end(), m.group(0), _name(body), "angle"))
    for m in _JINJA.finditer(line):
        found.append(Slot(i, m.start(), m.end(), m.group(0), _name(m.group("body")), "jinja"))
    for m in _CURLY.finditer(line):
        body = m.group("body")
        if body in known or body.startswith("input:") or any(s.start <= m.start() < s.end for s in found):
            continue
        found.append(Slot(i, m.start(), m.end(), m.group(0), _name(body), "curly"))
    for m in _BLANK.finditer(line):
        found.append(Slot(i, m.start(), m.end(), m.group(0), "", "blank"))
    return sorted(found, key=lambda s: s.start)


def slots(text: str, known: Iterable[str] = RENDERED, *, skip_fenced_code: bool = False) -> list[Slot]:
    """Every template slot, in reading order. `known` names the `{…}` variables rendering fills."""
    names = frozenset(known)
    out: list[Slot] = []
    in_fence = False
    for i, line in enumerate(text.split("\n")):
        if FENCE_LINE.match(line):
            in_fence = not in_fence
            continue
        if (in_fence and skip_fenced_code) or CONTEXT_LINE.match(line):
            continue
        out += _line_slots(i, line, names)
    return out


# ---- conditional asides ----------------------------------------------------------------------------------

_COND_WORD = r"(?:if|unless|when|whenever|where|in\s+case|otherwise|else)"
_VERB = r"(?:write|say|put|use|output|print|leave|state|answer|reply|note|return|enter|mark|skip|omit)"
_PAREN = re.compile(r"\s*(?P<open>[(\[])(?P<body>[^()\[\]\n]{3,160})(?P<close>[)\]])")
_TAIL = re.compile(r"\s*(?:—|–|--|;|,|:|\s-)\s*(?P<body>(?:(?:or|else|otherwise)\b|" + _COND_WORD + r"\b)[^\n]{3,160}?)"
                   r"\s*(?P<stop>[.!]?)\s*$", re.IGNORECASE)
_QUOTED = re.compile(QUOTE + r"(?P<alt>[^\"'’”`\n]{1,100})" + UNQUOTE)


@dataclass(frozen=True)
class Conditional:
    """An aside that tells the model what to write in a special case, inside a line of the template:
    `(or 'quiet — no commits' if 0)`, `— if none, write 'nothing due'`, `(write "n/a" unless …)`."""

    line: int
    start: int
    end: int
    text: str  # the aside as written, with its leading separator
    alternative: str  # the text to write in the special case ('' when it says what to do instead)
    condition: str  # "0", "none", "the feed is empty" ('' when it only says "otherwise")
    negated: bool  # "unless"
    action: str  # the aside's own words without separators: for asides with no quoted alternative


def _conditional(body: str, aside: bool) -> tuple[str, str, bool] | None:
    """(alternative, condition, negated) when the body is a conditional instruction: inside brackets, any
    condition or alternative ("(if any)", "(3 bullets, or none if quiet)", "(or 'x')"); as a clause after a
    dash or comma, one that starts with the condition and says what to write."""
    text = body.strip()
    has_cond = re.search(r"\b(?:" + _COND_WORD + r"|except)\b", text, re.IGNORECASE)
    quoted = _QUOTED.search(text)
    if aside:
        if not has_cond and not re.search(r"\bor\s+" + QUOTE, text, re.IGNORECASE):
            return None
    else:
        starts = re.match(r"^(?:or|else|otherwise|" + _COND_WORD + r"|" + _VERB + r")\b", text, re.IGNORECASE)
        if not has_cond or not starts or not (quoted or re.search(r"\b" + _VERB + r"\b", text, re.IGNORECASE)):
            return None
    alt = quoted.group("alt").strip() if quoted else ""
    m = re.search(r"\b(if|unless|when|whenever|where|in\s+case)\b\s*(?P<cond>[^,:;\"'‘“`)]*)", text, re.IGNORECASE)
    cond = (m.group("cond") if m else "").strip(" .")
    if quoted and m and m.start() > quoted.end():
        cond = text[m.end(1):].strip(" .)")
        cond = _QUOTED.sub("", cond).strip(" ,.")
    negated = bool(m and m.group(1).lower() == "unless")
    return alt, cond, negated


def conditionals(text: str) -> list[Conditional]:
    """Conditional asides inside template lines (a line that is one whole instruction sentence is left alone)."""
    out: list[Conditional] = []
    for i, line in enumerate(text.split("\n")):
        if CONTEXT_LINE.match(line) or FENCE_LINE.match(line):
            continue
        found = False
        for m in _PAREN.finditer(line):
            parsed = _conditional(m.group("body"), aside=True)
            if parsed is None:
                continue
            found = True
            out.append(Conditional(i, m.start(), m.end(), m.group(0), *parsed, action=m.group("body").strip()))
        if found:
            continue
        m2 = _TAIL.search(line)
        if m2 is not None and m2.start() > 0 and line[: m2.start()].strip():
            parsed = _conditional(m2.group("body"), aside=False)
            if parsed is not None and _QUOTED.search(m2.group("body")):
                out.append(Conditional(i, m2.start(), m2.end(), m2.group(0), *parsed,
                                       action=m2.group("body").strip()))
    return out


# ---- tools the task cannot call ---------------------------------------------------------------------------

_TOOL_NAME = r"(?:`[^`\n]{1,40}`|[A-Za-z_][\w.-]{0,40}(?:\(\))?)"
_TOOL_NOUN = r"(?:tool|function|function\s+call|command|api|action|plugin|skill|endpoint)"
_CALL = r"(?:`[^`\n]{1,40}`|[a-z_][\w.]*_[\w.]*(?:\(\))?|[A-Za-z_][\w.]*\(\))"  # save_note, `write`, create()
_TOOL_REF = (r"(?:the\s+|your\s+|a\s+|an\s+)?(?:(?:" + _TOOL_NAME + r")\s+)?" + _TOOL_NOUN + r"(?:\s+" + _CALL
             + r")?(?:\s*\([^)\n]{0,40}\))?")
TOOL_PHRASES = (
    # "use the Write tool to create", "using the create_file function, write", "Call the `save_note` tool once"
    re.compile(r"\b(?:use|using|call|calling|invoke|invoking|run|running|trigger)\s+" + _TOOL_REF
               + r"(?:\s*,\s*|\s+(?:to|and|in\s+order\s+to)\s+|\s+)", re.IGNORECASE),
    # "With the Write tool, create", "via the notes API", "through the file tool"
    re.compile(r"\b(?:with|via|through|by\s+calling|by\s+using|using)\s+" + _TOOL_REF + r"\s*,?\s*", re.IGNORECASE),
    # "call save_note(...)", "invoke `write_file`"
    re.compile(r"\b(?:call|invoke|run)\s+(?:the\s+)?" + _CALL + r"(?:\s*\([^)\n]{0,60}\))?(?:\s+(?:to|and)\s+)?",
               re.IGNORECASE),
)
_PATH = r"`?[\w.~/{}<>*-]*/[\w.{}<>*-]+\.(?:md|markdown|txt|json|jsonl|ya?ml|csv|html)`?|`?[\w{}<>*-]+\.(?:md|txt)`?"
FILE_OBJECT = re.compile(
    r"\b(?P<verb>create|write|save|make|store|add|put|produce|generate)\s+(?:it\s+|them\s+|each\s+(?:one|note)\s+)?"
    r"(?:(?:as|to|in|into|at)\s+)?(?:(?:a|an|the|one)\s+)?(?:(?:new|markdown|separate)\s+)*(?:(?:file|note|page)s?\s+)?"
    r"(?:(?:called|named|at|in|to|as)\s+)?(?P<path>" + _PATH + r")", re.IGNORECASE)


@dataclass(frozen=True)
class ToolCall:
    """An instruction to use a tool, function or API: a task's model gets text in and gives text out."""

    line: int
    start: int
    end: int
    text: str


def tool_calls(text: str) -> list[ToolCall]:
    out: list[ToolCall] = []
    for i, line in enumerate(text.split("\n")):
        spans: list[tuple[int, int]] = []
        for pattern in TOOL_PHRASES:
            for m in pattern.finditer(line):
                if not any(a <= m.start() < b for a, b in spans):
                    spans.append((m.start(), m.end()))
        out += [ToolCall(i, a, b, line[a:b]) for a, b in sorted(spans)]
    return out


__all__ = ["CONTEXT_LINE", "FILE_OBJECT", "Conditional", "ExampleSection", "Slot", "ToolCall", "conditionals",
           "example_sections", "example_span_of", "fence_lines", "fence_requests", "shows_fences", "slots",
           "tool_calls"]
