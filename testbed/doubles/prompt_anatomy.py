"""How the flawed-model double reads a prompt: its layout, not its sentences (the spec is in `flawed_models`).

Pure functions of the prompt text. What is read here — where the data starts, an example and whether it is
concrete, slots and whether a model can tell them from content, fences, format lines and block headers, the
sections, parenthetical conditions, the sizes asked for, a tool it is told to use — is what a reader sees
by looking at the page. Nothing here matches a sentence a proposer might add: a rule written in words is just
more instruction text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUMBER_WORDS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
NUM = r"(\d{1,4}|" + "|".join(NUMBER_WORDS) + r")"

# ---- records: the lines that show where the data begins -------------------------------------------------
PATH = r"[\w.-]+/[\w./*-]*\.(?:md|txt|csv|tsv|json|jsonl|log|ya?ml)\b"
FILE_LINE = re.compile(rf"^\s*(?:={3,}|-{3,}|#{{1,3}})?\s*(?:[\w ]{{0,24}}:\s*)?{PATH}.{{0,60}}$")
GROUP_HEADER = re.compile(r"^\s*(={3,}|-{3,})\s*(\S.*?)\s*\1\s*$")
DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"  # a calendar day as collectors print it
ISO_ANY = re.compile(DAY)
QUOTED_LABEL = re.compile(r"[\"“'`]([A-Z][\w' ]{0,24}:)[\"”'`]")
ISO_DATE = re.compile(rf"^\s*(?:[-*]\s+)?{DAY}(?:\s*[|;\t·]|,\S|\s+\d|\s*$)")
FRONT_MATTER = re.compile(r"^---\s*$")
SEPARATORS = ("|", "\t", ";", ",")

# ---- slots ----------------------------------------------------------------------------------------------
SLOT = re.compile(
    r"<(?P<angle>[^<>\n]{1,80})>"
    r"|\{\{\s*(?P<jinja>[^{}\n]{1,60}?)\s*\}\}"
    r"|(?<![\\$\w{])\{(?P<curly>[A-Za-z_][^{}\n]{0,60})\}(?!\})"
    r"|(?<![\[\w!])\[(?P<square>[^\[\]\n]{1,80})\](?![(\[]|:\s*(?:https?://|/|#))"
)
NOT_SQUARE = re.compile(r"^(?:\s|x|X|!\w+|\^\w+|\d+(?:[,\s]+\d+)*|[A-Z][a-z]+ \d{4})$")
COUNTING = re.compile(r"^(?:n|N|#|count|number|times|how many\b.*|number of\b.*|\w+ count|times \w+)$",
                      re.IGNORECASE)
NUMERIC = re.compile(r"\b(?:score|rating|amount|price|cost|total|sum|left|remaining|balance|budget|spent|kwh|"
                     r"minutes?|hours?|days?|age|"
                     r"\d+\s*[-–]\s*\d+)\b", re.IGNORECASE)
RANGE = re.compile(r"(\d+)\s*[-–]\s*(\d+)")

# ---- the rest of the page -------------------------------------------------------------------------------
HEADING = re.compile(r"^(#{1,3})\s+(\S.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```+|~~~+)\s*([\w+-]*)\s*$")
EXAMPLE_WORD = r"(?:examples?|samples?|for (?:example|instance)|e\.g\.|such as this|like this)"
EXAMPLE_HEADING = re.compile(rf"^#{{1,6}}\s+.*\b{EXAMPLE_WORD}", re.IGNORECASE)
EXAMPLE_LABEL = re.compile(
    rf"^\s*(?:\*\*|_|>\s*)?(?P<label>[^\n:—–]{{0,60}}?\b{EXAMPLE_WORD}\b[^\n:—–]{{0,40}}?)\s*(?:\*\*|_)?\s*"
    rf"(?:(?P<sep>:|—|–|\s--?\s|\.\.\.|…)\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)
EXAMPLE_END = re.compile(r"^\s*(?:-{3,}|_{3,}|\*{3,}|end of (?:the )?example\.?)\s*$", re.IGNORECASE)
BLOCK_HEADER = re.compile(
    r"(?P<open>={3,}|-{3,}|#{2,4}|\*\*)\s*(?P<label>[A-Z][A-Z0-9 _-]{1,30}?)\s*:\s*"
    r"(?P<slot><[^<>\n]{1,40}>|\[[^\[\]\n]{1,40}\]|\{\{?[^{}\n]{1,40}\}?\})\s*(?P<close>={3,}|-{3,}|\*\*)?"
)
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
LIST_MARK = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)")
ENUMERATED = re.compile(r"^(\s*(?:[-*+]\s+)?[A-Za-z]{1,3})(\d{1,2})([:.)]\s)")
ELLIPSIS = re.compile(r"^\s*(?:\.\.\.|…|etc\.?)\s*$")
PAREN = re.compile(r"\([^()\n]{3,160}\)")
CONDITION = re.compile(r"\b(?:if|unless|when|whenever|otherwise|else|in case|except)\b"
                       r"|\bor\s+[\"'‘“]", re.IGNORECASE)
TOOL_ASK = re.compile(
    r"\b(?:use|using|with|call|calling|invoke|via|through)\s+(?:the\s+|your\s+|a\s+)?`?(?P<tool>[\w-]+)`?"
    r"(?:\s+\w+)?\s+tool\b", re.IGNORECASE)
NEGATION = re.compile(r"\b(?:not|never|no|don't|do not|without|instead of)\b", re.IGNORECASE)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
ANSWER_WORDS = re.compile(r"\b(?:answer|respond|reply|write)\b[^.]{0,60}?\b([A-Z][A-Z-]{1,20})\b(?![a-z])")
PER_RECORD = re.compile(r"\b(?:for (?:each|every)\b|one [\w-]+(?: [\w-]+)? (?:per|for each)\b|"
                        r"(?:every|each) [\w-]+ (?:below|listed|that appears|in the (?:data|list|context))\b)",
                        re.IGNORECASE)
COUNT_NOUN = (r"(?:bullets?|items?|facts?|points?|questions?|ideas?|lines?|notes?|entries|entry|tips?|steps?|rows?|"
              r"dishes|meals?|activities|activity|things|reminders?|suggestions?|news|pieces of news|headlines?|"
              r"tasks?|chores?|recipes?|cards?|examples?)")
COUNT_ASK = re.compile(
    rf"\b(?P<q>at least|no fewer than|minimum of|min\.?|exactly|up to|at most|no more than)?\s*{NUM}"
    rf"(?:\s*(?:-|–|to|or)\s*{NUM})?\+?\s+(?:[\w,'-]+\s+){{0,3}}?{COUNT_NOUN}\b"
    rf"(?!\s+(?:per|for each|each|on)\b)", re.IGNORECASE)
WORDS_ASK = re.compile(
    rf"\b(?P<q>at least|no fewer than|minimum(?: of)?|more than|over|under|at most|no more than|maximum(?: of)?|"
    rf"fewer than|less than|up to|about|around|roughly|some)?\s*~?{NUM}(?:\s*(?:-|–|to)\s*{NUM})?"
    rf"(?P<plus>\+|\s+or more)?[\s-]+words?\b", re.IGNORECASE)


def number(token: str | None) -> int | None:
    if token is None:
        return None
    t = token.lower()
    return int(t) if t.isdigit() else NUMBER_WORDS.get(t)


# ---- slots -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    text: str  # as written: "[Payee]", "<due date>", "{amount}"
    inner: str  # what is inside the brackets
    described: bool  # a model can tell it from content and fills it
    counting: bool  # asks how many times something occurs
    numeric: bool  # asks for a number (a score, an amount, a range like 1-5)

    @property
    def words(self) -> list[str]:
        return re.findall(r"[a-z0-9]+", self.inner.lower())


def slots(line: str) -> list[Slot]:
    """Every slot in a line. Angle brackets read as "put something here"; in square or curly brackets only a
    description of three words or more does — a bare field name there (`[Payee]`, `{amount}`) looks like
    literal text (a link label, a tag, template syntax) and is copied as it stands."""
    out = []
    for m in SLOT.finditer(line):
        kind = next(k for k in ("angle", "jinja", "curly", "square") if m.group(k) is not None)
        inner = m.group(kind).strip()
        if kind == "square" and NOT_SQUARE.match(inner):
            continue  # a checkbox, a footnote, a citation: not a slot
        if kind == "angle" and inner in HTML_TAGS:
            continue  # markup, not a slot
        described = kind == "angle" or len(inner.split()) >= 3
        out.append(Slot(m.group(0), inner, described, bool(COUNTING.match(inner)), bool(NUMERIC.search(inner))))
    return out


HTML_TAGS = frozenset({"br", "br/", "hr", "p", "/p", "b", "/b", "i", "/i", "em", "/em", "div", "/div", "span",
                       "/span", "li", "/li", "ul", "/ul"})


def has_slot(line: str) -> bool:
    return bool(slots(line))


# ---- where the data starts ---------------------------------------------------------------------------------


def fields_of(line: str) -> list[str] | None:
    """The fields of a data row (three or more, split by | , ; or a tab), or None for any other line."""
    text = line.strip().strip("|")
    for sep in SEPARATORS:
        if sep == "," and text.count(", ") > 1:
            continue  # a sentence with commas, not a CSV row
        parts = [p.strip() for p in text.split(sep)]
        if len(parts) >= 3 and all(parts) and all(len(p) <= 80 for p in parts):
            return parts
    return None


def is_record(line: str) -> bool:
    """A line of collected data: it names a file, opens a group, carries a date first, or is a row of fields.
    A line holding a slot is a template, never data."""
    if not line.strip() or has_slot(line):
        return False
    if FILE_LINE.match(line) or ISO_DATE.match(line):
        return True
    if GROUP_HEADER.match(line) and not HEADING.match(line):
        return True
    if HEADING.match(line) and (re.search(PATH, line) or ISO_ANY.search(line)):
        return True  # a heading naming a file or a day: a collector's, not the template's
    fields = fields_of(line)
    return fields is not None and not TABLE_RULE.match(line) and any(c.isdigit() for c in line)


def paragraphs(lines: list[str]) -> list[tuple[int, int]]:
    """(first, end) line spans of blank-line-separated paragraphs."""
    spans, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            spans.append((start, i))
            start = None
    return spans


def data_start(lines: list[str]) -> int:
    """The first line of the collected data: the start of the first paragraph that holds a record (or a
    front-matter fence followed by a `key: value` line). len(lines) when the prompt holds no data."""
    spans = paragraphs(lines)
    for first, end in spans:
        for i in range(first, end):
            line = lines[i]
            if is_record(line):
                return first
            if FRONT_MATTER.match(line) and i + 1 < end and re.match(r"^[\w-]+:\s", lines[i + 1]):
                return first
    # No record anywhere: the data is the first heading or list after the last paragraph that shows a template.
    last_template = max((k for k, (first, end) in enumerate(spans)
                         if any(has_slot(ln) or FENCE.match(ln) for ln in lines[first:end])), default=-1)
    for first, _ in spans[last_template + 1:]:
        if HEADING.match(lines[first]) or LIST_MARK.match(lines[first]):
            return first
    return len(lines)


# ---- examples ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    first: int  # the introducing heading or label line
    end: int  # one past the example's last line
    lines: tuple[str, ...]  # the example's body
    concrete: bool  # holds specifics outside its slots: it reads as an answer to copy

    def content(self) -> list[str]:
        """What a model copies: the headings and every line that says something (not blank, not a rule)."""
        return [ln for ln in self.lines if ln.strip() and not FENCE.match(ln)]


NAME = re.compile(r"\b[A-Z][a-z]+\b")


def specifics(line: str) -> bool:
    """Does a line carry specifics — a digit, a quotation, a name inside a sentence — outside its slots?"""
    text = LIST_MARK.sub("", SLOT.sub(" ", line)).lstrip("> ").rstrip()
    if HEADING.match(text):
        return False
    if re.search(r"\d|[\"“”‘’]", text):
        return True
    for m in NAME.finditer(text):
        before = text[: m.start()].rstrip()
        if before and before[-1] not in ".!?:;—–-•*>":
            return True  # a capitalised word inside a sentence: a name, a place, a title
    return False


def find_example(lines: list[str], stop: int) -> Example | None:
    """The first example before `stop` (where the data starts): a heading that names one runs to the next
    heading of its level or above; a label ("Example:", "Sample entry —", "For instance") to the end of its
    paragraph, a rule line or the data; a label followed by a fence, to the closing fence."""
    for i in range(min(stop, len(lines))):
        line = lines[i]
        heading = HEADING.match(line)
        if EXAMPLE_HEADING.match(line) and heading:
            level = len(heading.group(1))
            j = i + 1
            while j < stop and not ((h := HEADING.match(lines[j])) and len(h.group(1)) <= level):
                if is_record(lines[j]) or (j + 1 < stop and not lines[j].strip() and not lines[j + 1].strip()):
                    break  # the data begins, or two blank lines close the example
                j += 1
            return _example(lines, i, i + 1, j)
        label = EXAMPLE_LABEL.match(line)
        if label is None or heading is not None or FORMAT_HINT.search(line) or len(label.group("label").split()) > 9:
            continue
        rest = (label.group("rest") or "").strip()
        if label.group("sep") is None and line.rstrip().endswith("."):
            continue  # a sentence that mentions an example, not a label introducing one
        j = i + 1
        if not rest and j < stop and FENCE.match(lines[j]):
            k = next((k for k in range(j + 1, stop) if FENCE.match(lines[k])), stop)
            return _example(lines, i, j, min(k + 1, stop))
        while j < stop and lines[j].strip() and not EXAMPLE_END.match(lines[j]):
            j += 1
        end = j + 1 if j < stop and EXAMPLE_END.match(lines[j]) else j
        if rest:  # "Example: 2026-03-10: Precision over scope" — the rest of the label line is the example
            ex = _example(lines, i, i + 1, end)
            return Example(ex.first, ex.end, (rest, *ex.lines), ex.concrete or specifics(rest))
        if end > i + 1:
            return _example(lines, i, i + 1, end)
    return None


FORMAT_HINT = re.compile(r"\b(?:format|template|layout|structure|shape)\b", re.IGNORECASE)


def _example(lines: list[str], first: int, body: int, end: int) -> Example:
    block = tuple(ln for ln in lines[body:end] if not EXAMPLE_END.match(ln))
    while block and not block[-1].strip():
        block = block[:-1]
    return Example(first, end, block, any(specifics(ln) for ln in block))


# ---- the anatomy --------------------------------------------------------------------------------------------


@dataclass
class Section:
    heading: str  # "## Due" as written ("" for the text before the first heading)
    lines: list[str] = field(default_factory=list)  # the instruction lines under it

    @property
    def text(self) -> str:
        return " ".join(ln.strip() for ln in self.lines if ln.strip())


@dataclass(frozen=True)
class FormatGroup:
    """Consecutive format lines: what one item of the answer looks like (e.g. `Q1: <question>` + `A1: <answer>`)."""

    lines: tuple[str, ...]
    section: int  # index into Anatomy.sections


@dataclass(frozen=True)
class BlockFormat:
    open: str
    label: str
    slot: str
    close: str
    body: tuple[str, ...]  # the template lines shown under the header (headings, slot bullets)

    def header(self, title: str) -> str:
        return f"{self.open} {self.label}: {title}" + (f" {self.close}" if self.close else "")


@dataclass
class Anatomy:
    lines: list[str]
    instructions: list[str]  # the instruction lines, any example left out
    data: list[str]
    example: Example | None
    fences: list[tuple[str, str]]  # (marker, info string) of every fence line in the instructions
    sections: list[Section]
    groups: list[FormatGroup]
    blocks: BlockFormat | None
    table: tuple[str, ...] | None  # a table header row and its template row
    conditionals: list[tuple[int, str]]  # (section index, the parenthetical as written)
    tool: str | None  # a tool the instructions tell the model to use
    per_record: bool  # one item per record of the data ("for each bill", "one line per task")
    record_noun: str  # what a record is, in the instructions' word ("bill", "task"), "" when not per record
    answers: list[str]  # the answer words offered in capitals ("answer RESTOCK … otherwise OK")
    labels: list[str]  # line labels quoted in the instructions ("Mon:", "Watch:"): lines the answer starts with
    count: int | None  # items asked for the answer as a whole
    section_counts: dict[int, int]  # items asked for in one section
    words: tuple[str, int, int | None] | None  # (qualifier, n, upper bound) of the length asked

    @property
    def instructed(self) -> bool:
        return any(ln.strip() for ln in self.instructions)


def read_prompt(prompt: str) -> Anatomy:
    lines = prompt.split("\n")
    example = find_example(lines, len(lines))
    blanked = lines if example is None else [
        "" if example.first <= i < example.end else ln for i, ln in enumerate(lines)]
    start = data_start(blanked)
    if example is not None and example.first >= start:
        example, start = None, data_start(lines)  # an "example" inside the data is data
    elif example is not None and example.end > start:
        example = Example(example.first, start, example.lines[: max(0, start - example.first - 1)], example.concrete)
    instructions = [ln for i, ln in enumerate(lines[:start]) if example is None or not example.first <= i < example.end]
    data = lines[start:]
    sections = _sections(instructions)
    fences = [(m.group(1)[:3], m.group(2)) for ln in instructions if (m := FENCE.match(ln))]
    # what a slot says is not an instruction, and a date is not a count
    text = ISO_ANY.sub(" ", SLOT.sub(" ", " ".join(ln.strip() for ln in instructions)))
    return Anatomy(
        lines=lines, instructions=instructions, data=data, example=example, fences=fences, sections=sections,
        groups=_format_groups(sections), blocks=_block_format(instructions), table=_table(instructions),
        conditionals=_conditionals(sections), tool=_tool(text), per_record=bool(PER_RECORD.search(text)),
        record_noun=record_noun(text), answers=_answers(text),
        count=_count(ISO_ANY.sub(" ", SLOT.sub(" ", sections[0].text)) or text),
        section_counts={i: n for i, s in enumerate(sections)
                        if s.heading and (n := _count(ISO_ANY.sub(" ", SLOT.sub(" ", s.text)))) is not None},
        labels=list(dict.fromkeys(QUOTED_LABEL.findall(text))),
        words=_words(text),
    )


def _sections(instructions: list[str]) -> list[Section]:
    out = [Section("")]
    for line in instructions:
        if FENCE.match(line):
            continue  # a fence around a layout: the layout's headings are still its sections
        m = HEADING.match(line)
        if m and not BLOCK_HEADER.search(line):
            out.append(Section(line.strip()))
        else:
            out[-1].lines.append(line)
    for s in out:  # `## Weather` named inline ("sections: ## Weather, ## Activities") is a heading too
        for m in re.finditer(r"(?<![#\w])(#{1,3} [A-Z][\w' -]{1,40}?)(?=[,;.)`\"]|\s+(?:and|or)\s|$)", s.text):
            name = m.group(1).strip()
            if all(o.heading != name for o in out):
                out.append(Section(name))
    return out


def is_format_line(line: str) -> bool:
    """A line that shows what a line of the answer looks like: it holds a slot, few plain words besides, and
    reads as a pattern, not as a sentence."""
    if not line.strip() or not has_slot(line) or BLOCK_HEADER.search(line) or TABLE_ROW.match(line):
        return False
    plain = SLOT.sub(" ", line)
    words = re.findall(r"[A-Za-z]{2,}", plain)
    return len(words) <= 9 and not re.search(r"[a-z]{2,}\. [A-Z]", plain)


def _format_groups(sections: list[Section]) -> list[FormatGroup]:
    groups: list[FormatGroup] = []
    for si, s in enumerate(sections):
        run: list[str] = []
        labels: set[str] = set()
        for line in [*s.lines, ""]:
            if is_format_line(line):
                m = ENUMERATED.match(line)
                if m and m.group(1).strip() in labels and m.group(2) != "1":
                    continue  # Q5/A5 after "...": the same item again, numbered
                if m:
                    labels.add(m.group(1).strip())
                run.append(line)
            elif ELLIPSIS.match(line):
                continue
            elif run:
                groups.append(FormatGroup(tuple(run), si))
                run, labels = [], set()
    return groups


def _block_format(instructions: list[str]) -> BlockFormat | None:
    for i, line in enumerate(instructions):
        m = BLOCK_HEADER.search(line)
        if m is None:
            continue
        body = []
        standalone = m.group(0).strip() == line.strip().strip("`\"'")
        if standalone:
            for nxt in instructions[i + 1:]:
                if not (HEADING.match(nxt) or LIST_MARK.match(nxt) or not nxt.strip()):
                    break
                body.append(nxt)
            while body and not body[-1].strip():
                body.pop()
        close = m.group("close") or ""
        if m.group("open") == "**" and not close:
            continue
        return BlockFormat(m.group("open"), m.group("label").strip(), m.group("slot"), close, tuple(body))
    return None


def _table(instructions: list[str]) -> tuple[str, ...] | None:
    rows = [ln for ln in instructions if TABLE_ROW.match(ln) and not TABLE_RULE.match(ln.strip().strip("|"))]
    template = [r for r in rows if has_slot(r)]
    if not template:
        return None
    head = [r for r in rows if not has_slot(r)]
    return (head[0] if head else "", template[0])


def _conditionals(sections: list[Section]) -> list[tuple[int, str]]:
    out = []
    for si, s in enumerate(sections):
        for line in s.lines:
            out += [(si, m.group(0)) for m in PAREN.finditer(line) if CONDITION.search(m.group(0))]
    return out


def record_noun(text: str) -> str:
    """The thing counted in "for each distinct lesson", "one line per bill": lesson, bill."""
    m = PER_RECORD.search(text)
    if m is None:
        return ""
    after = re.findall(r"[a-z-]+", text[m.start():].lower())
    at = next((i for i, w in enumerate(after) if w in ("each", "every", "per")), len(after))
    words = [w for w in after[at + 1:at + 4] if w not in ("distinct", "new", "single", "other", "individual", "one")]
    noun = words[0] if words else ""
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def _answers(text: str) -> list[str]:
    found = [m.group(1) for m in ANSWER_WORDS.finditer(text)]
    return list(dict.fromkeys(w for w in found if w not in ("JSON", "CSV", "URL", "ID")))


def _tool(text: str) -> str | None:
    for sentence in SENTENCE.split(text):
        m = TOOL_ASK.search(sentence)
        if m and not NEGATION.search(sentence[: m.end()]):
            return m.group("tool")
    return None


def _count(text: str) -> int | None:
    for m in COUNT_ASK.finditer(text):
        lo, hi = number(m.group(2)), number(m.group(3))
        if lo is None or (lo == 1 and hi is None and m.group("q") is None):
            continue  # "one line", "one idea": a single thing per something, not a count
        if hi is not None and m.group("q") is None:
            return (lo + hi) // 2 if hi - lo > 2 else lo
        return lo
    return None


def _words(text: str) -> tuple[str, int, int | None] | None:
    best = None
    for m in WORDS_ASK.finditer(text):
        n, hi = number(m.group(2)), number(m.group(3))
        if n is None or n < 10:
            continue
        q = (m.group("q") or "").lower()
        kind = ("min" if q in ("at least", "no fewer than", "minimum", "minimum of", "more than", "over")
                or m.group("plus") else "max" if q in ("under", "at most", "no more than", "maximum", "maximum of",
                                                        "fewer than", "less than", "up to") else "about")
        if hi is not None:
            kind = "range"
        if best is None or kind == "min":
            best = (kind, n, hi)
    return best


def target_words(anatomy: Anatomy, default: int) -> int:
    """How long the answer runs: a small model roughly meets a floor, stays under a cap, hits a range's middle."""
    if anatomy.words is None:
        return default
    kind, n, hi = anatomy.words
    if kind == "range" and hi is not None:
        return (n + hi) // 2
    return {"min": int(n * 1.15), "max": int(n * 0.8)}.get(kind, n)


__all__ = ["Anatomy", "BlockFormat", "Example", "FormatGroup", "Section", "Slot", "data_start", "fields_of",
           "find_example", "is_format_line", "is_record", "number", "read_prompt", "slots", "specifics",
           "target_words"]
