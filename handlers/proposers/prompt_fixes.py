"""Text transforms of a prompt template, one per way a model misreads a template. Pure; None = not applicable.

Each transform finds its part by structure (`domain.prompt_shapes`: example sections, slots, fences,
conditional asides, tool instructions), whatever the wording, and removes the thing a model copies instead of
asking it not to: a concrete example becomes a description of its shape, a bare slot (`[Payee]`, `{amount}`,
`___`) becomes a described one (`<payee>`) and a described slot that still leaks becomes words, a fence goes (its
content stays), a conditional aside becomes its own sentence, a tool instruction becomes the task's declared
block format. Rules go on their own line just before the
`{context}` line (or at the end), so the instruction part of the template grows and the data part stays put.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

from domain import prompt_shapes as shapes

DO_NOT_COPY = "Write from the context below only; no sentence of an earlier answer belongs in this one."
NO_FENCES = "Write plain text: no code fences and no backtick blocks around the answer."
NO_PLACEHOLDERS = ("Text in angle brackets says what to write there: write real names and values in its place, "
                   "never the brackets, braces or blanks themselves.")

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_LABEL = re.compile(r"(?:^|(?<=[.!?·;|]\s))(?P<label>[A-Z][A-Za-z]*(?: [a-z]+){0,2}):(?:\s+\S|\s*$)")
_QUOTED_LINE = re.compile(r"^\s*>\s?")
_WORD_SLOT = re.compile(r"\w")


def add_rule(text: str, rule: str) -> str:
    """Insert `rule` as its own line before `{context}` (or append it); unchanged when already present."""
    if rule in text:
        return text
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if shapes.CONTEXT_LINE.match(line)), None)
    if at is None:
        return text.rstrip("\n") + "\n\n" + rule + "\n"
    head = "\n".join(lines[:at]).rstrip("\n")
    return head + "\n\n" + rule + "\n\n" + "\n".join(lines[at:])


# ---- examples --------------------------------------------------------------------------------------------


def _announced(lines: Sequence[str], first: int, last: int) -> bool:
    """An unlabelled block of answer lines that the line before announces ("…like this one:"); a template
    section (a heading) or a line holding a conditional aside is instructions, not an example."""
    prev = next((lines[k] for k in range(first - 1, -1, -1) if lines[k].strip()), "")
    block = "\n".join(lines[first: last + 1])
    return (prev.rstrip().endswith(":") and not shapes.HEADING.match(prev)
            and not any(shapes.HEADING.match(ln) for ln in lines[first: last + 1]) and not shapes.conditionals(block))


def example_span(text: str, quoted: Iterable[str] = ()) -> tuple[int, int, bool] | None:
    """(first, last, headed) lines to replace: an example section from its head line (headed) to its end
    marker, preferring the one holding the quoted (copied) lines; else the announced block the copied lines
    sit in (no head line)."""
    sections = shapes.example_sections(text)
    quoted = [q for q in quoted if q.strip()]
    lines = text.split("\n")

    def holds(s: shapes.ExampleSection) -> bool:
        body = " ".join(" ".join(s.lines(text)).casefold().split())
        return any(" ".join(q.casefold().split()[:8]) in body for q in quoted)

    chosen = next((s for s in sections if quoted and holds(s)), sections[0] if sections else None)
    if chosen is not None:
        return chosen.head, max(chosen.last, chosen.end or 0), True
    span = shapes.example_span_of(text, quoted)
    if span is not None and _announced(lines, *span):
        return span[0], span[1], False
    return None


def example_lines(text: str, quoted: Iterable[str] = ()) -> list[str]:
    span = example_span(text, quoted)
    return [] if span is None else text.split("\n")[span[0]: span[1] + 1]


_WEEKDAY = re.compile(r"^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*$", re.IGNORECASE)


def _structural_label(label: str, instructions: str) -> bool:
    """A label the answer's shape needs ("Went well:", "Mon:") rather than content of the example ("Tomatoes:"):
    the instructions around the example use its words, or it names a weekday."""
    words = re.findall(r"[a-z]+", label.lower())
    return bool(_WEEKDAY.match(label)) or (bool(words) and all(w in instructions for w in words))


def _shape_parts(body: list[str], instructions: str = "") -> list[str]:
    """What an example shows, in words: its headline, headings, labels, bullets, blocks, paragraphs, length."""
    parts: list[str] = []
    body = [_QUOTED_LINE.sub("", ln) for ln in body]  # an example shown as a quote is still the answer's shape
    content = [ln for ln in body if ln.strip() and not shapes.FENCE_LINE.match(ln)]
    if not content:
        return parts
    first = content[0].strip()
    if _DATE.match(first):
        parts.append("a first line that starts with today's date (YYYY-MM-DD)")
    heads = [m.group(0).strip() for ln in content if (m := shapes.HEADING.match(ln))]
    if heads:
        parts.append("the headings " + ", ".join(dict.fromkeys(heads)) + " in this order")
    blocks = [ln.strip() for ln in content if re.match(r"^\s*(?:={2,}|-{2,}|\+{2,})\s*\S", ln)]
    if blocks:
        m = re.match(r"^(?P<pre>\W+\s*(?:[A-Z][A-Z ]*:\s*)?)", blocks[0])
        pre = (m.group("pre") if m else blocks[0][:4]).strip()
        parts.append(f"{len(blocks)} block(s), each opened by a line that starts with \"{pre}\" and names its subject")
    found = list(dict.fromkeys(m.group("label") for ln in content for m in _LABEL.finditer(ln.strip())
                               if not _DATE.match(m.group("label"))))
    flat = " ".join(instructions.lower().split())
    labels = [lab for lab in found if _structural_label(lab, flat)]
    if labels:
        parts.append("the parts " + ", ".join(f"\"{lab}:\"" for lab in labels[:8]) + ", each followed by its own text")
    if len(found) > len(labels):
        parts.append(f"{len(found) - len(labels)} short part(s) that each name their subject, a colon, then its text")
    bullets = sum(1 for ln in content if shapes.LIST_ITEM.match(ln))
    if bullets:
        parts.append(f"about {bullets} bullet line(s)")
    table = [ln for ln in content if ln.strip().startswith("|")]
    if table:
        cols = [c.strip() for c in table[0].strip().strip("|").split("|")]
        parts.append("a table with the columns " + ", ".join(cols))
    prose = [ln for ln in content if not (shapes.HEADING.match(ln) or shapes.LIST_ITEM.match(ln)
                                          or ln.strip().startswith(("|", "=", "<")))]
    paragraphs = 0
    inside = False
    for ln in body:
        is_prose = bool(ln.strip()) and ln in prose
        paragraphs += int(is_prose and not inside)
        inside = is_prose
    if paragraphs and not labels:
        parts.append(f"{paragraphs} paragraph(s) of prose")
    words = sum(len(ln.split()) for ln in content)
    parts.append(f"roughly {max(10, round(words, -1))} words")
    return parts


def describe_example(lines: list[str], headed: bool = True, instructions: str = "") -> str:
    """The example's shape as one instruction sentence: nothing in it can be copied as content. `headed`: the
    first line is the example's label or heading (its inline text after a label still counts); `instructions`:
    the rest of the template, which tells structural labels from the example's content."""
    head = lines[0] if lines and headed else ""
    inline = ""
    if (m := re.match(r"^[^:—–]*[:—–]\s*(.*)$", head)) is not None and not shapes.HEADING.match(head):
        inline = m.group(1)
    body = ([inline] if inline.strip() else []) + (lines[1:] if headed else lines)
    parts = _shape_parts([ln for ln in body if not re.match(r"^\s*(?:-{3,}|</\w+>|end of)", ln, re.IGNORECASE)],
                         instructions)
    return "Shape of the answer: " + "; ".join(parts) + "." if parts else ""


def structure_only_example(text: str, quoted: Iterable[str] = ()) -> str | None:
    """The example (labelled, titled, tagged, fenced, or the announced block the output copied) replaced by a
    sentence describing its shape, plus a rule to write from today's context (session-reflection)."""
    span = example_span(text, quoted)
    if span is None:
        return None
    lines = text.split("\n")
    first, last, headed = span
    description = describe_example(lines[first: last + 1], headed, "\n".join(lines[:first] + lines[last + 1:]))
    if not description:
        return None
    out = "\n".join([*lines[:first], description, *lines[last + 1:]])
    return add_rule(out, DO_NOT_COPY)


# ---- fences ----------------------------------------------------------------------------------------------


def remove_fences(text: str) -> str | None:
    """Fence lines dropped (what they wrapped stays), requests for a code block reworded, a rule against
    fences (research-radar)."""
    drop = set(shapes.fence_lines(text))
    lines = [ln for i, ln in enumerate(text.split("\n")) if i not in drop]
    out = "\n".join(lines)
    for _, phrase in sorted(shapes.fence_requests(out), key=lambda p: -len(p[1])):
        out = out.replace(phrase, "as plain text" if not phrase.lstrip().startswith(("`", "~")) else "")
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = add_rule(out, NO_FENCES)
    return None if out == text else out


# ---- slots -----------------------------------------------------------------------------------------------


def _wrapped(line: str, slot: shapes.Slot) -> str:
    before, after = line[: slot.start], line[slot.end:]
    if before.endswith(("**", "__")) and after.startswith(("**", "__")):
        return " in bold"
    if before.endswith(("*", "_")) and after.startswith(("*", "_")):
        return " in italics"
    if before.endswith("(") and after.startswith(")"):
        return " in parentheses"
    if before.endswith("`") and after.startswith("`"):
        return " as code"
    return ""


def _blank_name(line: str, slot: shapes.Slot) -> str:
    label = re.search(r"([A-Za-z][\w ]{0,30}?)\s*[:=]?\s*$", line[: slot.start])
    return label.group(1).strip().lower() if label else "value"


_OWN_DETERMINER = re.compile(r"^(?:a|an|the|one|two|three|some|any|each|every|what|why|how|when|where|which|who|"
                             r"whose|your|its|their|his|her|our|my|this|that|these|those|\d+)\b", re.IGNORECASE)


def _phrase(name: str) -> str:
    """'tool' → 'the tool'; 'one line on why it matters' stays as it is."""
    return name if _OWN_DETERMINER.match(name) or len(name.split()) > 4 else f"the {name}"


def _lead(line: str) -> str:
    """What kind of line it is, in words: a heading, a bullet, a numbered line, a table row, a line."""
    if m := shapes.HEADING.match(line):
        return f"a level-{len(m.group(1))} heading"
    if m := shapes.LIST_ITEM.match(line):
        return "one numbered line per item" if m.group(1).strip()[0].isdigit() else "one bullet per item"
    return "one table row per item" if line.strip().startswith("|") else "a line"


def describe_slot_line(line: str, line_slots: Sequence[shapes.Slot]) -> str:
    """A template line with slots, said in words: "- **[Tool]** ([Category]) — [Why]" → "Write one bullet
    per item: the tool in bold, the category in parentheses, then why." Literal words of the line are kept in
    quotes so labels survive; markup between the slots is left out."""
    indent = line[: len(line) - len(line.lstrip())]
    lead = _lead(line)
    parts: list[str] = []
    pos = 0
    for slot in line_slots:
        literal = line[pos: slot.start]
        words = re.sub(r"^\s*(?:#{1,6}|[-*+]|\d+[.)])\s+", "", literal) if pos == 0 else literal
        words = re.sub(r"[*_`()\[\]|]+", " ", words).strip(" —–-:;,.")
        if _WORD_SLOT.search(words):
            parts.append(f"\"{' '.join(words.split())}\"")
        parts.append(f"{_phrase(slot.name or _blank_name(line, slot))}{_wrapped(line, slot)}")
        pos = slot.end
    tail = re.sub(r"[*_`()\[\]|]+", " ", line[pos:]).strip(" —–-:;,.")
    if _WORD_SLOT.search(tail):
        parts.append(f"\"{' '.join(tail.split())}\"")
    body = ", ".join(parts[:-1]) + (", then " if len(parts) > 1 else "") + parts[-1]
    return f"{indent}Write {lead}: {body}."


def described(line: str, line_slots: Sequence[shapes.Slot]) -> str:
    """The line with each ambiguous slot (`[Tool]`, `{payee}`, `{{ name }}`, `___`) turned into an angle-bracket
    description (`<tool>`, `<payee>`, `<vendor>`): the common convention for "write something real here"."""
    out, pos = [], 0
    for slot in line_slots:
        out.append(line[pos: slot.start])
        out.append(slot.text if slot.shape == "angle" else f"<{slot.name or _blank_name(line, slot)}>")
        pos = slot.end
    return "".join(out) + line[pos:]


def describe_slots(text: str, known: Iterable[str] = shapes.RENDERED, *, only: Collection[str] | None = None,
                   keep: str | None = None, in_words: bool = False) -> str | None:
    """Template slots a model repeats literally, fixed as a family (`[Tool]`, `[Payee]:`, `<name>`, `{var}`,
    `{{ var }}`, `___`), plus a rule against placeholders (research-radar). Ambiguous slots become angle-bracket
    descriptions; with `in_words` (a described `<slot>` leaked too) each slot line is said in words instead, so
    no slot is left to repeat. `only`: the slots that leaked (None: all); `keep`: a block-header regex whose
    lines stay as they are."""
    lines = text.split("\n")
    found = [s for s in shapes.slots(text, known) if (only is None or s.text in only)
             and not (keep and _matches(keep, lines[s.line])) and (in_words or s.shape != "angle")]
    if not found:
        return None
    by_line: dict[int, list[shapes.Slot]] = {}
    for s in found:
        by_line.setdefault(s.line, []).append(s)
    for i, line_slots in by_line.items():
        lines[i] = describe_slot_line(lines[i], line_slots) if in_words else described(lines[i], line_slots)
    return add_rule("\n".join(lines), NO_PLACEHOLDERS)


def _matches(regex: str, line: str) -> bool:
    try:
        return re.search(regex, line.strip()) is not None
    except re.error:
        return False


# ---- conditional asides ----------------------------------------------------------------------------------

_NONE = {"0", "none", "zero", "empty", "nothing", "no", "there are none", "there is none", "nothing new",
         "none found", "no items", "n/a"}


def _rule_for(c: shapes.Conditional) -> str:
    cond = c.condition.strip()
    if not c.alternative:
        sentence = c.action.strip(" .;,—–-")
        sentence = re.sub(r"^(?:or|else)\s+", "", sentence, flags=re.IGNORECASE)
        return sentence[:1].upper() + sentence[1:] + "."
    when = ("If there is nothing to report" if cond.lower() in _NONE or not cond
            else f"{'Unless' if c.negated else 'If'} {cond}")
    return f"{when}, write exactly this line instead: {c.alternative}"


def plain_conditionals(text: str) -> str | None:
    """Each conditional aside cut out of its template line and stated as its own sentence on the next line:
    `… (or 'quiet — no commits' if 0).` → `…` + `If there is nothing to report, write exactly this line
    instead: quiet — no commits` (morning-briefing); `— if none, write 'x'`, `(write "x" unless …)` alike."""
    found = shapes.conditionals(text)
    if not found:
        return None
    lines = text.split("\n")
    by_line: dict[int, list[shapes.Conditional]] = {}
    for c in found:
        by_line.setdefault(c.line, []).append(c)
    out: list[str] = []
    for i, line in enumerate(lines):
        asides = by_line.get(i)
        if not asides:
            out.append(line)
            continue
        cut = line
        for c in sorted(asides, key=lambda c: -c.start):
            cut = cut[: c.start] + cut[c.end:]
        stop = "." if line.rstrip().endswith(".") and not cut.rstrip().endswith(".") else ""
        out.append(cut.rstrip() + stop)
        indent = line[: len(line) - len(line.lstrip())]
        out += [indent + _rule_for(c) for c in asides]
    return "\n".join(out)


# ---- blocks instead of tools -----------------------------------------------------------------------------


def block_header(regex: str) -> tuple[str, str] | None:
    """('=== PRACTICE NOTE: ', ' ===') from '^=== PRACTICE NOTE: (.+) ===$': the literal text around the one
    group of a header regex, escapes and whitespace classes read as text; None when the regex is more than a
    header line (alternations, several groups) or the rendering does not match it."""
    body = regex.removeprefix("^").removesuffix("$")
    pre: list[str] = []
    post: list[str] = []
    side = pre
    i, groups = 0, 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "SwWdDbB":
                return None  # a class that is not whitespace: more than literal header text
            if nxt == "s":
                i += 2
                quant = re.match(r"[+*?]|\{\d*,?\d*\}", body[i:])
                side.append("" if quant and quant.group(0) in ("*", "?") and not side else " ")
                i += len(quant.group(0)) if quant else 0
                continue
            side.append(nxt)
            i += 2
        elif ch == "(":
            depth, j = 1, i + 1
            while j < len(body) and depth:
                depth += {"(": 1, ")": -1}.get(body[j], 0) if body[j - 1] != "\\" else 0
                j += 1
            if body[i + 1: i + 3] == "?:" or body[i + 1: i + 3] in ("?=", "?!"):
                return None
            groups += 1
            side = post
            i = j
            quant = re.match(r"[+*?]", body[i:])
            i += len(quant.group(0)) if quant else 0
        elif ch in "|[]{}.*+?^$":
            if ch in "+*?" and side and side[-1] == " ":
                i += 1
                continue
            return None
        else:
            side.append(ch)
            i += 1
    if groups != 1:
        return None
    head, tail = re.sub(r" {2,}", " ", "".join(pre)), re.sub(r" {2,}", " ", "".join(post))
    if len(head.strip()) < 3 or re.search(regex, f"{head}Sample Title{tail}", re.MULTILINE) is None:
        return None
    return head, tail


def shows_format(prompt: str, regex: str) -> bool:
    """Does the prompt show the block header the contract wants (so a miss is the model's fault)? A prompt
    line that matches the header regex, or the header's literal part."""
    try:
        if re.search(regex, prompt, re.MULTILINE):
            return True
    except re.error:
        return False
    header = block_header(regex)
    if header is not None:
        return header[0].strip() in prompt
    literal = re.sub(r"[\\^$()\[\].*+?{}|]", "", regex).strip()
    return len(literal) >= 4 and literal in prompt


def block_rule(header: tuple[str, str], noun: str = "item") -> str:
    return (f"Output each {noun} as a block: a line {header[0]}<title>{header[1]}, then the {noun}'s text. "
            f"Nothing before the first block. Do not call any tool; the blocks are saved as files for you.")


def _noun(header: tuple[str, str]) -> str:
    """What a block holds, from its header: '=== PRACTICE NOTE: ' → 'note'."""
    words = re.findall(r"[A-Za-z]+", header[0])
    return words[-1].lower() if words else "item"


def blocks_instead_of_tool(text: str, regex: str) -> str | None:
    """Any instruction to use a tool, function or API (which a task's model cannot call) reworded so the model
    writes blocks in the task's declared format, which the postprocessor saves as files (lesson-distiller):
    'use the Write tool to create X.md', 'With the Write tool, create X', 'call save_note(...)' alike."""
    calls = shapes.tool_calls(text)
    header = block_header(regex)
    if not calls or header is None:
        return None
    noun = _noun(header)
    lines = text.split("\n")
    for c in sorted(calls, key=lambda c: (c.line, -c.start)):
        line = lines[c.line]
        rest = line[c.end:]
        obj = shapes.FILE_OBJECT.match(rest.lstrip())
        if obj is not None:
            rest = f"write one {noun} block" + rest.lstrip()[obj.end():]
        elif re.match(r"^\s*(?:create|write|save|make|store|add|produce|generate)\b", rest, re.IGNORECASE) is None:
            rest = f"write one {noun} block" + ("" if re.match(r"^\s*[,.;]", rest) or not rest.strip() else " ")\
                + rest.lstrip()
        start = line[: c.start]
        new = start + rest
        if not start.strip() or start.rstrip().endswith((".", ":", "!")):
            new = start + rest[:1].upper() + rest[1:]
        lines[c.line] = new
    out = "\n".join(lines)
    out = shapes.FILE_OBJECT.sub(lambda m: f"{m.group('verb')} one {noun} block", out)
    return add_rule(out, block_rule(header, noun))


# ---- producer too thin for its consumer ------------------------------------------------------------------


def _title(heading: str) -> str:
    return " ".join(heading.lstrip().lstrip("#").split()).casefold().rstrip(":")


def has_heading(text: str, section: str) -> bool:
    """Does the template show `section` ("## Weather") as a heading of its own?"""
    return any(_title(m.group(0)) == _title(section) for line in text.split("\n") if (m := shapes.HEADING.match(line)))


def require_sections(text: str, sections: Sequence[str], reader: str) -> str | None:
    """The headings a consumer reads, added to the producer's template where it lacks them (packing-list reads the
    trip plan's ## Weather): a model writes the sections its template shows."""
    missing = [s for s in sections if not has_heading(text, s)]
    if not missing:
        return None
    block = "\n\n".join(f"{s if s.lstrip().startswith('#') else '## ' + s.strip()}\n"
                         f"{_title(s).capitalize()}, from the context: {reader} reads this section." for s in missing)
    return add_rule(text, block)


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
            if shapes.HEADING.match(line) and line.lstrip("#").strip().lower() == title:
                j = i + 1
                while j < len(lines) and lines[j].strip() and not shapes.HEADING.match(lines[j]):
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


__all__ = ["DO_NOT_COPY", "NO_FENCES", "NO_PLACEHOLDERS", "add_rule", "block_header", "block_rule",
           "blocks_instead_of_tool", "describe_example", "describe_slot_line", "describe_slots", "described",
           "example_lines", "example_span", "has_heading", "plain_conditionals", "remove_fences", "require_sections",
           "require_size", "shows_format", "structure_only_example"]
