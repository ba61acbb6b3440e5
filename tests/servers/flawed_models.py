"""A responder that behaves like the seed's flawed local models — deterministic for a given seed.

Plug it into any loopback server (`OllamaServer(FlawedModels(seed=1))`) or use it in process through
`ResponderBackend`. Every model, every protocol:

- truncates exactly at num_predict tokens (= words here), done_reason "length" (the servers apply
  `protocol.apply_budget`; `FlawedModels.budgeted` does the same in process);
- copies an `Example:` block verbatim as its whole answer, unless the prompt says DO NOT COPY
  (any case) — then it keeps the example's structure (heading/bullet/NOTE lines) with its own words;
- wraps the answer in ```markdown fences when the prompt shows ``` anywhere, unless the prompt forbids
  fences ("no code fences", "do not use fences", "never ... fences", "without ... fences");
- repeats each template line that holds a `[Placeholder]` token verbatim, unless the prompt says to
  replace / fill / not leave / never output placeholders ("no placeholders" also works);
- follows `## Heading` lines and a `Sections: A, B, C` line outside the example as its sections;
- writes about the length asked ("N words", "at least N words", "N-M words", "under N words"), else ~220;
- answers a JSON schema with a schema-valid instance (numbers at the middle of their range).

The example block is the text after a line `Example:` (or `Example output:`), up to a line `---`,
`End of example`, two blank lines, or the end of that message; a fenced example is the fence's content.

Per model (name with or without an `ollama:` prefix):

- `vault-unified-4b-q8` cannot follow the `=== NOTE: <title> ===` format: it writes `**Note N: title**`.
- `qwen2.5-coder:14b` writes ~240 words of plain prose whatever was asked (no sections, no NOTE blocks).
- `qwen3:8b` thinks ~400 words first unless think=false, so a num_predict under that answers nothing.
- `gemma3:12b` (and any unknown name) follows formats well; the universal flaws above still apply.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from tests.servers.protocol import Reply, Request, apply_budget

NOTE_FORMAT = re.compile(r"=== NOTE:")
EXAMPLE_HEAD = re.compile(
    r"^\s*(?:#+\s*)?example(?:\s*\([^)\n]*\))?(?: output| answer)?(?:\s*\([^)\n]*\))?\s*:\s*(.*)$", re.IGNORECASE
)
EXAMPLE_END = re.compile(r"^\s*(?:---+|end of example\.?)\s*$", re.IGNORECASE)
DO_NOT_COPY = re.compile(r"do\s+not\s+copy|don't\s+copy|never\s+copy", re.IGNORECASE)
NO_FENCES = re.compile(r"\b(?:no|not|never|without|avoid)\b[^.\n]{0,40}\bfences?\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"\[[A-Z][A-Za-z0-9 _/-]{0,30}\]")
NO_PLACEHOLDERS = re.compile(
    r"(?:replace|fill(?:\s+in)?|substitute)\b[^.\n]{0,40}placeholders?"
    r"|\b(?:no|never|not\s+leave|not\s+output|not\s+include|without)\b[^.\n]{0,30}placeholders?",
    re.IGNORECASE,
)
HEADING = re.compile(r"^(#{1,3})\s+(\S.*?)\s*$")
SECTIONS = re.compile(r"^\s*(?:required\s+)?sections?\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
NOTES_COUNT = re.compile(r"\b(\d{1,2})\s+notes?\b", re.IGNORECASE)
RANGE_WORDS = re.compile(r"\b(\d{2,5})\s*(?:-|–|to)\s*(\d{2,5})\s+words\b", re.IGNORECASE)
MIN_WORDS = re.compile(r"\b(?:at\s+least|minimum(?:\s+of)?|no\s+fewer\s+than)\s+(\d{2,5})\s+words\b", re.IGNORECASE)
MAX_WORDS = re.compile(
    r"\b(?:under|at\s+most|no\s+more\s+than|maximum(?:\s+of)?|fewer\s+than)\s+(\d{2,5})\s+words\b", re.IGNORECASE
)
ANY_WORDS = re.compile(r"\b(\d{2,5})\s+words\b", re.IGNORECASE)
STOP = set(
    re.findall(
        r"\w+",
        "the and for with that this from your you are was were have has will into each when what which about them "
        "then than they their there these those must should would could write line lines word words output answer "
        "example format section sections note notes prompt below above only also more most",
    )
)
FILLER = re.findall(
    r"\w+", "update review signal trend change detail source summary finding topic question result plan"
)
VERBS = re.findall(r"[^|]+", "points to|links|follows|raises|clarifies|changes|supports|questions|extends|narrows")


@dataclass(frozen=True)
class Traits:
    follows_notes: bool = True
    prose_only_words: int | None = None  # the coder: this many words of prose, whatever was asked
    thinking_words: int = 0  # spent before answering unless think=false
    default_words: int = 220


MODELS: dict[str, Traits] = {
    "vault-unified-4b-q8": Traits(follows_notes=False),
    "qwen2.5-coder:14b": Traits(prose_only_words=240),
    "qwen3:8b": Traits(thinking_words=400),
    "gemma3:12b": Traits(),
}


def traits_of(model: str, models: dict[str, Traits] = MODELS) -> Traits:
    name = model.split(":", 1)[1] if model.startswith(("ollama:", "openai:", "embedded:")) else model
    return models.get(name, Traits())


class FlawedModels:
    """`responder(request) -> Reply`; the servers apply the num_predict budget to what it returns."""

    def __init__(self, seed: int = 0, models: dict[str, Traits] | None = None) -> None:
        self.seed = seed
        self.models = {**MODELS, **(models or {})}  # extra or replaced model behaviours for a benchmark

    def __call__(self, request: Request) -> Reply:
        traits = traits_of(request.model, self.models)
        rng = random.Random(self._seed_of(request))
        thinking = "" if request.think is False or not traits.thinking_words else _thinking(rng, traits.thinking_words)
        return Reply(text=self.answer(request, traits, rng), thinking=thinking)

    def budgeted(self, request: Request) -> Reply:
        """The reply as a server would send it: truncated at num_predict."""
        return apply_budget(self(request), request.num_predict)

    def _seed_of(self, request: Request) -> int:
        key = f"{self.seed}|{request.model}|{request.options.get('seed')}|{request.prompt}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")

    def answer(self, request: Request, traits: Traits, rng: random.Random) -> str:
        prompt = request.prompt
        example, rest = _split_example(prompt)
        vocab = _vocabulary(rest)  # its own words come from the context, never from the example
        if request.json_schema is not None:
            return json.dumps(_instance(request.json_schema, rng, vocab))
        placeholder_lines = [] if NO_PLACEHOLDERS.search(prompt) else _placeholder_lines(rest)
        if traits.prose_only_words is not None:
            body = _prose(rng, vocab, traits.prose_only_words)
        elif example is not None and not DO_NOT_COPY.search(prompt):
            body = example.strip("\n")
        else:
            words = _target_words(prompt, traits.default_words)
            if NOTE_FORMAT.search(rest):
                body = _notes(rest, rng, vocab, words, traits.follows_notes)
            elif sections := _sections(rest):
                body = _sectioned(sections, rng, vocab, words)
            elif example is not None:
                body = _like_example(example, rng, vocab, words, traits.follows_notes)
            else:
                body = _prose(rng, vocab, words)
        if placeholder_lines:
            body = "\n".join(placeholder_lines) + "\n\n" + body
        if "```" in prompt and not NO_FENCES.search(prompt):
            body = f"```markdown\n{body}\n```"
        return body


def _vocabulary(prompt: str) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z'-]{3,}", prompt)
    seen: dict[str, None] = {}
    for w in words:
        lw = w.lower()
        if lw not in STOP and not PLACEHOLDER.search(w):
            seen.setdefault(lw, None)
    return list(seen) or FILLER


def _sentence(rng: random.Random, vocab: list[str]) -> str:
    a, b, c = (rng.choice(vocab) for _ in range(3))
    return f"The {a} {rng.choice(VERBS)} {b} and the {c}."


def _prose(rng: random.Random, vocab: list[str], words: int) -> str:
    out: list[str] = []
    count = 0
    paragraph: list[str] = []
    while count < words:
        s = _sentence(rng, vocab)
        paragraph.append(s)
        count += len(s.split())
        if len(paragraph) == 4:
            out.append(" ".join(paragraph))
            paragraph = []
    if paragraph:
        out.append(" ".join(paragraph))
    return "\n\n".join(out)


def _thinking(rng: random.Random, words: int) -> str:
    steps = [
        "Okay, the user wants this done carefully.",
        "Let me think about what matters here.",
        "Wait, I should check that again.",
    ]
    out: list[str] = []
    count = 0
    while count < words:
        s = rng.choice(steps)
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def _split_example(prompt: str) -> tuple[str | None, str]:
    """(the example block or None, the prompt without it)."""
    lines = prompt.split("\n")
    for i, line in enumerate(lines):
        head = EXAMPLE_HEAD.match(line)
        if not head:
            continue
        block: list[str] = [head.group(1)] if head.group(1).strip() else []
        j = i + 1
        if j < len(lines) and lines[j].strip().startswith("```") and not block:
            k = next((k for k in range(j + 1, len(lines)) if lines[k].strip().startswith("```")), len(lines))
            return "\n".join(lines[j + 1 : k]), "\n".join(lines[:i] + lines[k + 1 :])
        blanks = 0
        while j < len(lines):
            if EXAMPLE_END.match(lines[j]):
                break
            blanks = blanks + 1 if not lines[j].strip() else 0
            if blanks == 2:
                break
            block.append(lines[j])
            j += 1
        return "\n".join(block).strip("\n"), "\n".join(lines[:i] + lines[j + 1 :])
    return None, prompt


def _placeholder_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if PLACEHOLDER.search(line)]


def _target_words(prompt: str, default: int) -> int:
    if m := RANGE_WORDS.search(prompt):
        return (int(m.group(1)) + int(m.group(2))) // 2
    if m := MIN_WORDS.search(prompt):
        return int(int(m.group(1)) * 1.2)
    if m := MAX_WORDS.search(prompt):
        return int(int(m.group(1)) * 0.8)
    if m := ANY_WORDS.search(prompt):
        return int(m.group(1))
    return default


def _sections(text: str) -> list[str]:
    names = [m.group(2) for line in text.split("\n") if (m := HEADING.match(line))]
    for m in SECTIONS.finditer(text):
        names += [n.strip().strip("#").strip() for n in m.group(1).split(",") if n.strip()]
    return list(dict.fromkeys(names))


def _sectioned(sections: list[str], rng: random.Random, vocab: list[str], words: int) -> str:
    each = max(12, words // len(sections))
    return "\n\n".join(f"## {name}\n\n{_prose(rng, vocab, each)}" for name in sections)


def _notes(text: str, rng: random.Random, vocab: list[str], words: int, follows: bool) -> str:
    m = NOTES_COUNT.search(text)
    n = int(m.group(1)) if m else 3
    each = max(12, words // max(n, 1))
    blocks = []
    for i in range(1, n + 1):
        title = " ".join(w.capitalize() for w in rng.sample(vocab, min(2, len(vocab))))
        head = f"=== NOTE: {title} ===" if follows else f"**Note {i}: {title}**"
        blocks.append(f"{head}\n{_prose(rng, vocab, each)}")
    return "\n\n".join(blocks)


def _like_example(example: str, rng: random.Random, vocab: list[str], words: int, follows_notes: bool) -> str:
    """The example's shape with new content: headings kept, NOTE lines re-titled, other lines rewritten."""
    lines = example.split("\n")
    content = sum(1 for line in lines if line.strip() and not HEADING.match(line) and "=== NOTE:" not in line) or 1
    each = max(6, words // content)
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip() or HEADING.match(line):
            out.append(line)
        elif line.strip().startswith("=== NOTE:"):
            title = f"{rng.choice(vocab).capitalize()} {rng.choice(vocab)}"
            out.append(f"=== NOTE: {title} ===" if follows_notes else f"**Note {i}: {title}**")
        elif m := re.match(r"^(\s*(?:[-*]|\d+\.)\s+)", line):
            out.append(m.group(1) + _prose(rng, vocab, each).replace("\n\n", " "))
        else:
            out.append(_prose(rng, vocab, each).replace("\n\n", " "))
    return "\n".join(out)


def _instance(schema: dict[str, Any], rng: random.Random, vocab: list[str]) -> Any:
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
        return {k: _instance(v, rng, vocab) for k, v in props.items()}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        return [_instance(schema.get("items") or {"type": "string"}, rng, vocab) for _ in range(n)]
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", 1), schema.get("maximum", 5)
        mid = (lo + hi) / 2
        return round(mid) if kind == "integer" else mid
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return " ".join(rng.choice(vocab) for _ in range(4))
