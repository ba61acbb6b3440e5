"""A flawed small local model, as a behaviour spec — deterministic for a given seed, model, options seed and prompt.

It reacts to what the prompt and its data *are*, never to sentences written about them. Telling it in words
("do not copy", "no fences", "replace the placeholders") changes nothing; changing what the prompt shows does.
A size it is asked for (a number of words or of bullets, however phrased) it roughly meets: that is the one
thing a small model reliably takes from instructions. How a page is read lives in `prompt_anatomy`, the data in
`data_reading`; this module says what the model does with them.

The prompt (spelled out in `prompt_anatomy`)
- The *data* starts at the first paragraph holding a record — a line naming a file, a `=== group ===` header,
  a row of three or more fields, a line that starts with a date, front matter; the *instructions* are what
  comes before.
- An *example* is a block introduced by a heading or a label that names one ("### Example week",
  "Example:", "Sample entry —", "For instance, …"), colon or not. It is *concrete* when a line of it holds
  specifics (a digit, a quotation, a name inside a sentence) outside its slots; else it only shows a shape.
- A *slot* is `<…>`, `[…]`, `{…}` or `{{…}}`. Angle brackets, or three words or more saying what belongs
  there, read as "fill this in"; a bare field name in square or curly brackets (`[Payee]`, `{amount}`) reads as
  literal text.
- *Format lines* are instruction lines that show an answer line: a slot and few words besides. A *block
  header* is `=== LABEL: <slot> ===` (or `---`, `###`) anywhere in the instructions; a *table* is a `| … |` row
  holding slots.

What the model does, in this order
1. No instructions before the data (an overflow cut them off, see `benchmarks.fault_models`): it continues the
   data — its last lines again, garbled, no format.
2. Coder models write ~240 words of plain prose whatever was asked.
3. A tool it is told to use ("use / with / call … X tool", not negated): none is offered, so it narrates what
   it would do — a report paragraph, no format lines, no blocks.
4. A concrete example: copied as the whole answer (its headings and content lines), every day alike.
5. Otherwise it writes the layout the instructions show: a block header → that many blocks, each laid out like
   the template under the header; a shape-only example → its lines with the slots filled (a line with no slot
   is a remark and is left out); format lines → one item per record when the instructions say "for each / one …
   per / every … below", else the number asked, else three; a table → rows; headings → those sections, with
   bullets where a number of them is asked, else prose about the data; line labels quoted in the instructions
   (`"Mon:"`, `"Watch:"`) → one line per label; answer words offered in capitals ("answer RESTOCK …, otherwise
   OK") → the first of them on a line. A format line with a counting slot (`<n>`, `<count>`, `<times>`) lists
   the values that recur across the data's rows with their counts; when nothing recurs it says so. Described
   slots are filled from the data (the column or `Label:` the slot names, else the record's own text); a line
   holding a bare slot is written exactly as shown. "Each" counts the data's groups when their headers name the
   thing counted (`=== TASK: … ===` for "each task"), else its bullets or rows.
6. Items come from the data evenly, first to last, from wherever the eye first lands (it varies with the day);
   when the data's bullets sit under several headings they go round those sections — every section the
   collector let through is material.
7. A parenthetical in the instructions that states a condition or an alternative ("(or 'x' if 0)", "(… unless …)",
   "(write 'x' when empty)") is written into the answer where it stood.
8. Fences shown in the instructions (``` or ~~~) wrap the answer the same way.
9. Length: the words asked (a floor is met with a margin, a cap undershot, a range's middle), else ~220.

Per model (name with or without a backend prefix; unknown names follow formats well):
- thinking families (`qwen3*`, `deepseek-r1*`) think ~400 / ~600 words first unless `think` is false (Qwen3 also
  honours its documented `/no_think` switch), so a small num_predict answers nothing;
- coder families (`*coder*`, `codellama*`, `starcoder*`, `codegemma*`) write prose only (rule 2);
- format-incapable fine-tunes (`vault-unified-4b-q8`, `household-1b-q4`) write block headers and table rows as
  bold labels (`**Note 1: title**`);
- `context_length` is what `/api/show` reports for the model (what its num_ctx may be raised to).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from testbed.doubles.data_reading import Data, Group, key, labelled, read_data
from testbed.doubles.prompt_anatomy import (
    ENUMERATED,
    HEADING,
    ISO_ANY,
    LIST_MARK,
    PER_RECORD,
    RANGE,
    Anatomy,
    FormatGroup,
    Section,
    Slot,
    read_prompt,
    slots,
    target_words,
)
from testbed.servers.protocol import Reply, Request, apply_budget

MAX_ITEMS = 12
BLOCK_WORDS = 36  # a block with no body template gets two or three sentences
Source = Group | str  # what one item of the answer is about: a group of the data, or one of its lines
VERBS = re.findall(r"[^|]+", "points to|links|follows|raises|clarifies|changes|supports|questions|extends|narrows")


@dataclass(frozen=True)
class Traits:
    follows_format: bool = True  # block headers and table rows come out right
    prose_only_words: int | None = None  # a coder: this many words of prose, whatever was asked
    thinking_words: int = 0  # spent before answering unless think=false
    default_words: int = 220
    context_length: int = 32768
    no_think_switch: bool = False  # honours "/no_think" in the prompt (Qwen3)


MODELS: dict[str, Traits] = {
    "vault-unified-4b-q8": Traits(follows_format=False, context_length=8192),
    "household-1b-q4": Traits(follows_format=False, context_length=8192),
    "gemma3:12b": Traits(context_length=131072),
    "gemma3:4b": Traits(context_length=131072),
    "mistral-nemo:12b": Traits(context_length=131072),
    "llama3.2:3b": Traits(context_length=131072),
    "mistral:7b": Traits(context_length=32768),
}
FAMILIES: tuple[tuple[re.Pattern[str], Traits], ...] = (
    (re.compile(r"coder|^codellama|^starcoder|^codegemma"), Traits(prose_only_words=240)),
    (re.compile(r"^qwen3"), Traits(thinking_words=400, no_think_switch=True, context_length=40960)),
    (re.compile(r"^deepseek-r1"), Traits(thinking_words=600, context_length=131072)),
)


def traits_of(model: str, models: dict[str, Traits] = MODELS) -> Traits:
    name = model.split(":", 1)[1] if model.startswith(("ollama:", "openai:", "embedded:", "anthropic:")) else model
    if name in models:
        return models[name]
    return next((t for pattern, t in FAMILIES if pattern.search(name)), Traits())


class FlawedModels:
    """`responder(request) -> Reply`; the servers apply the num_predict budget to what it returns."""

    def __init__(self, seed: int = 0, models: dict[str, Traits] | None = None) -> None:
        self.seed = seed
        self.models = {**MODELS, **(models or {})}  # extra or replaced model behaviours for a benchmark

    def __call__(self, request: Request) -> Reply:
        traits = traits_of(request.model, self.models)
        rng = random.Random(self._seed_of(request))
        switched_off = traits.no_think_switch and "/no_think" in request.prompt
        thinks = traits.thinking_words and request.think is not False and not switched_off
        thinking = _thinking(rng, traits.thinking_words) if thinks else ""
        return Reply(text=self.answer(request, traits, rng), thinking=thinking)

    def budgeted(self, request: Request) -> Reply:
        """The reply as a server would send it: truncated at num_predict."""
        return apply_budget(self(request), request.num_predict)

    def _seed_of(self, request: Request) -> int:
        key_ = f"{self.seed}|{request.model}|{request.options.get('seed')}|{request.prompt}"
        return int.from_bytes(hashlib.sha256(key_.encode()).digest()[:8], "big")

    def answer(self, request: Request, traits: Traits, rng: random.Random) -> str:
        if request.json_schema is not None:
            return json.dumps(_instance(request.json_schema, rng, read_data(request.prompt.split("\n"))))
        anatomy = read_prompt(request.prompt)
        return Writer(anatomy, read_data(anatomy.data), traits, rng).answer()


class Writer:
    """One answer: the rules of the module docstring applied to one prompt."""

    def __init__(self, anatomy: Anatomy, data: Data, traits: Traits, rng: random.Random) -> None:
        self.a, self.data, self.traits, self.rng = anatomy, data, traits, rng
        self.vocab = data.vocabulary()
        self.start = rng.randrange(997)  # where its eye lands first in the data: varies with the day
        self.dates = ISO_ANY.findall("\n".join(anatomy.data)) or ISO_ANY.findall("\n".join(anatomy.instructions))

    def answer(self) -> str:
        a = self.a
        if not a.instructed:
            return self.continuation()
        if self.traits.prose_only_words is not None:
            return self.prose(self.traits.prose_only_words)
        if a.tool is not None:
            body = self.narrative(a.tool)
        elif a.example is not None and a.example.concrete:
            body = "\n".join(a.example.content())
        else:
            body = self.compose()
        if a.fences:
            marker, info = a.fences[0]
            body = f"{marker}{info}\n{body}\n{marker}"
        return body

    # ---- the layouts ---------------------------------------------------------------------------------------

    def compose(self) -> str:
        a = self.a
        if a.blocks is not None:
            return self.blocks()
        if a.example is not None:
            return self.shaped(a.example.lines)
        headed = [i for i, s in enumerate(a.sections) if s.heading]
        parts: list[str] = []
        preamble = [g for g in a.groups if g.section == 0]
        for g in preamble:
            parts.append(self.items(g, a.sections[0]))
        if a.table is not None and not headed:
            parts.append(self.table())
        if headed:
            prose_sections = [i for i in headed if not self._structured(i)] or headed
            words = max(12, target_words(a, self.traits.default_words) // len(prose_sections))
            spare_count = a.count if not preamble and a.table is None else None
            for i in headed:
                body, spare_count = self.section(i, words, spare_count)
                parts.append(f"{a.sections[i].heading}\n{body}".rstrip())
        elif not parts and len(a.labels) >= 2:
            spread = self.data.spread(len(a.labels), self.start)
            parts.append("\n".join(f"{label} {self.text_of(src)}" for label, src in zip(a.labels, spread, strict=True)))
        elif not parts and a.answers:
            per = self._records_n() if a.per_record else 0
            parts.append("\n".join([a.answers[0], *(f"- {self.text_of(r)}" for r in self._records()[:per])]))
        elif not parts:
            n = a.count
            parts.append(self.bullets(n) if n else self.prose(target_words(a, self.traits.default_words)))
        out = "\n\n".join(p for p in parts if p)
        return self.echo_conditions(out)

    def section(self, i: int, words: int, spare_count: int | None) -> tuple[str, int | None]:
        s = self.a.sections[i]
        groups = [g for g in self.a.groups if g.section == i]
        if groups:
            return "\n".join(self.items(g, s) for g in groups), spare_count
        if self.a.table is not None and any(self.a.table[1] == ln for ln in s.lines):
            return self.table(), spare_count
        n = self.a.section_counts.get(i) or (self._records_n() if PER_RECORD.search(s.text) else None)
        if n is None and spare_count:
            n, spare_count = spare_count, None
        return (self.bullets(n) if n else self.prose(words)), spare_count

    def _structured(self, i: int) -> bool:
        s = self.a.sections[i]
        return (any(g.section == i for g in self.a.groups) or i in self.a.section_counts
                or bool(PER_RECORD.search(s.text)))

    def _records(self) -> list[Source]:
        """What "each" counts: the data's groups when their headers name the thing ("for each task" and
        `=== TASK: … ===`), else its bullets or rows."""
        noun = self.a.record_noun
        named: list[Source] = [g for g in self.data.groups if noun and noun in g.title.lower()]
        if len(named) >= 2:
            return named
        groups: list[Source] = list(self.data.groups)
        if len(groups) >= 2 and not noun:
            return groups
        return list(self.data.content) or groups

    def _spread_records(self, limit: int) -> list[Source]:
        records = self._records()
        if len(records) <= limit:
            return records
        return [records[round(i * (len(records) - 1) / (limit - 1))] for i in range(limit)]

    def _records_n(self) -> int:
        return max(1, min(MAX_ITEMS, len(self._records())))

    def items(self, group: FormatGroup, section: Section) -> str:
        counting = [s for ln in group.lines for s in slots(ln) if s.counting]
        if counting:
            return self.counted(group, counting[0])
        per_record = self.a.per_record or bool(PER_RECORD.search(section.text))
        asked = self.a.section_counts.get(self.a.sections.index(section)) or self.a.count
        sources: list[Source]
        if asked is None and per_record and len(self._records()) >= 2:
            sources = self._spread_records(MAX_ITEMS)
        else:
            sources = list[Source](self.data.spread(min(asked or 3, MAX_ITEMS), self.start))
        out = []
        for i, src in enumerate(sources):
            out += [self.filled(_renumber(line, i + 1), src) for line in group.lines]
        return "\n".join(out)

    def counted(self, group: FormatGroup, count_slot: Slot) -> str:
        item = next((s for ln in group.lines for s in slots(ln) if not s.counting and not s.numeric), None)
        values = self.data.recurring(item.words if item else [])
        if not values:
            what = item.inner if item else "item"
            return f"Nothing repeats: every {what} in the data appears only once."
        out = []
        for value, n in values[:8]:
            for line in group.lines:
                text = line.replace(count_slot.text, str(n))
                if item is not None:
                    text = text.replace(item.text, value, 1)
                out.append(self.filled(text, value))
        return "\n".join(out)

    def blocks(self) -> str:
        fmt = self.a.blocks
        assert fmt is not None
        sources: list[Source]
        if self.a.count is None and self.a.per_record and len(self._records()) >= 2:
            sources = self._spread_records(8)
        else:
            sources = list[Source](self.data.spread(self.a.count or 2, self.start))
        out = []
        slot = next(iter(slots(fmt.slot)), None)
        for i, src in enumerate(sources, start=1):
            named = self.field(slot, src) if slot is not None else None
            title = named or self.title(src)
            head = fmt.header(title) if self.traits.follows_format else f"**{fmt.label.title()} {i}: {title}**"
            body = self.shaped(fmt.body, title, src) if fmt.body else self.prose(BLOCK_WORDS, src)
            out.append(f"{head}\n{body}")
        return "\n\n".join(out)

    def shaped(self, lines: tuple[str, ...] | list[str], title: str | None = None,
               within: Source | None = None) -> str:
        """A template's lines with their slots filled — from one group of the data when the block is about it; a
        line without a slot is a remark, left out; a bullet whose slot asks for several ("3 bullets") becomes
        that many."""
        out: list[str] = []
        if isinstance(within, Group):
            own = read_data(within.lines)
            spread = iter(own.spread(24, self.start) if own.content else self.data.spread(24, self.start))
        else:
            spread = iter(self.data.spread(24, self.start))
        for line in lines:
            found = slots(line)
            if not line.strip() or (HEADING.match(line) and not found):
                out.append(line)
            elif found:
                n = 1
                if LIST_MARK.match(line) and (m := re.search(r"\b(\d+)\s+bullets?\b", line)):
                    n = int(m.group(1))
                for _ in range(n):
                    out.append(self.filled(line, next(spread, self.rng.choice(self.vocab)), title))
        while out and not out[-1].strip():
            out.pop()
        return "\n".join(out)

    def table(self) -> str:
        assert self.a.table is not None
        head, template = self.a.table
        records = self._records()
        n = self._records_n() if self.a.per_record and len(records) >= 2 else (self.a.count or 3)
        sources = records[:n] if self.a.per_record and len(records) >= 2 else self.data.spread(n, self.start)
        rows = [self.filled(template, src) for src in sources]
        if not self.traits.follows_format:
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            return "\n".join(f"- **{c[0]}**: {', '.join(c[1:])}" for c in cells)
        if not head:
            return "\n".join(rows)
        rule = "|" + "|".join("---" for _ in head.strip().strip("|").split("|")) + "|"
        return "\n".join([head.strip(), rule, *rows])

    def bullets(self, n: int) -> str:
        records = self._records()
        sources = records[:n] if self.a.per_record and len(records) >= n else self.data.spread(n, self.start)
        return "\n".join(f"- {self.text_of(src)}" for src in sources)

    # ---- filling slots -------------------------------------------------------------------------------------

    def filled(self, line: str, src: Source, title: str | None = None) -> str:
        found = slots(line)
        if any(not s.described for s in found):
            return line  # a bare field name reads as literal text: the line as shown
        used_src = False
        for s in found:
            value = self.value(s, src, title)
            if value is None:
                value = self.text_of(src) if not used_src else self.phrase()
                if len(s.inner.split()) >= 3 and len(value.split()) < 8:  # a description asks for a sentence
                    value = f"{value} — {self.sentence(self.words_of(value))}"
                used_src = True
            line = line.replace(s.text, value, 1)
        return line

    def value(self, slot: Slot, src: Source, title: str | None) -> str | None:
        words = slot.words
        if title is not None and key(slot.inner) in ("title", "name", "slug", "heading"):
            return title
        field_value = self.field(slot, src)
        if field_value is not None:
            return field_value
        if (len(words) <= 2 and any(w in ("date", "day", "when") for w in words)) or "YYYY" in slot.inner:
            return self.dates[-1] if self.dates else "2026-01-01"
        if slot.numeric and (len(words) <= 3 or RANGE.search(slot.inner)):
            m = RANGE.search(slot.inner)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                return str(self.rng.randint(lo + 1, max(lo + 1, hi - 1)))
            number = re.search(r"\d+(?:[.,]\d+)?", self.text_of(src))
            return number.group(0) if number else str(self.rng.randint(2, 9))
        return None

    def field(self, slot: Slot, src: Source) -> str | None:
        want = key(" ".join(slot.words))
        if not want:
            return None
        if isinstance(src, Group):
            label = src.label
            if label and key(label[0]) == want:
                return label[1]
            pairs = labelled(src.lines)
            return pairs.get(want)
        col = self.data.column(slot.words)
        if col is not None and " | " in src:
            cells = src.split(" | ")
            return cells[col] if col < len(cells) else None
        return labelled([src]).get(want)

    def text_of(self, src: Source) -> str:
        if isinstance(src, Group):  # what the group is about: its first line that says something of its own
            first = next((ln.strip() for ln in src.lines
                          if ln.strip() and not HEADING.match(ln) and not slots(ln)), "")
            return LIST_MARK.sub("", first) or src.title
        return LIST_MARK.sub("", src).strip()

    def title(self, src: Source) -> str:
        if isinstance(src, Group) and src.label:
            return src.label[1]
        text = self.text_of(src)
        if " | " in text:  # a row: what it is about is its first cell that is words
            text = next((c for c in text.split(" | ") if re.fullmatch(r"[A-Za-z][\w' &-]*", c)), text)
        words = re.findall(r"[A-Za-z][A-Za-z'-]+", text)[:4] or [self.rng.choice(self.vocab)]
        return " ".join(w.capitalize() for w in words)

    def phrase(self) -> str:
        return " ".join(self.rng.choice(self.vocab) for _ in range(self.rng.randint(3, 5)))

    # ---- text ----------------------------------------------------------------------------------------------

    def echo_conditions(self, text: str) -> str:
        """Rule 7: each conditional parenthetical goes into the answer where its instruction stood."""
        lines = text.split("\n")
        for si, paren in self.a.conditionals:
            heading = self.a.sections[si].heading
            at = next((i for i, ln in enumerate(lines) if ln.strip() == heading), -1) if heading else -1
            target = next((i for i in range(at + 1, len(lines)) if lines[i].strip()), None)
            if target is not None:
                lines[target] = f"{lines[target].rstrip()} {paren}"
        return "\n".join(lines)

    def sentence(self, pool: list[str] | None = None) -> str:
        words = pool or self.vocab
        a, b, c = (self.rng.choice(words) for _ in range(3))
        return f"The {a} {self.rng.choice(VERBS)} {b} and the {c}."

    @staticmethod
    def words_of(text: str) -> list[str] | None:
        return [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]{3,}", text)] or None

    def prose(self, words: int, src: Source | None = None) -> str:
        pool = self.words_of(self.text_of(src)) if src is not None else None
        out: list[str] = []
        paragraph: list[str] = []
        count = 0
        while count < words:
            s = self.sentence(pool)
            paragraph.append(s)
            count += len(s.split())
            if len(paragraph) == 4:
                out.append(" ".join(paragraph))
                paragraph = []
        if paragraph:
            out.append(" ".join(paragraph))
        return "\n\n".join(out)

    def narrative(self, tool: str) -> str:
        return (f"Report on the {self.rng.choice(self.vocab)} material\n\n"
                f"The {tool} tool would be the way to save this; what it would hold: " + self.prose(140))

    def continuation(self) -> str:
        tail = [ln for ln in self.a.data if ln.strip()][-6:] or [self.phrase()]
        return "\n".join(tail * 3)


def _renumber(line: str, n: int) -> str:
    """`Q1: <question>` as the n-th item: `Qn: <question>`."""
    m = ENUMERATED.match(line)
    return f"{m.group(1)}{n}{m.group(3)}{line[m.end():]}" if m else line


def _thinking(rng: random.Random, words: int) -> str:
    steps = ["Okay, the user wants this done carefully.", "Let me think about what matters here.",
             "Wait, I should check that again."]
    out: list[str] = []
    count = 0
    while count < words:
        s = rng.choice(steps)
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def _instance(schema: dict[str, Any], rng: random.Random, data: Data) -> Any:
    """A small schema-valid value: enough for judges and proposers talking JSON to a double."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties") or {}
        return {k: _instance(v, rng, data) for k, v in props.items()}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        return [_instance(schema.get("items") or {"type": "string"}, rng, data) for _ in range(n)]
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", 1), schema.get("maximum", 5)
        mid = (lo + hi) / 2
        return round(mid) if kind == "integer" else mid
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    vocab = data.vocabulary()
    return " ".join(rng.choice(vocab) for _ in range(4))


__all__ = ["FAMILIES", "MODELS", "FlawedModels", "Traits", "Writer", "traits_of"]
