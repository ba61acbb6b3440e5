"""The fault benchmark's model double: `tests.servers.FlawedModels`, plus what a format-following model does with
its data — the behaviours through which four of the planted faults show in the seed (FAULTS.md, "how it shows").

`FlawedModels` writes from the prompt's words and its layout (headings, NOTE blocks, examples), never from the
collected data, so a collector fault (F08 starving head, F09 leaking section regex, F11 overflowing context)
cannot change its output, and it knows no block format but `=== NOTE:`. `FaultModels` adds, for models that
follow formats (not the coder, not `vault-unified-4b-q8` for block headers):

- a template line `- <signal> — count=<n>…` is filled from the context's `- name (count=N)` lines: one bullet per
  signal counted at least twice; with none, "No trends visible" (the seed's starving collector, F08);
- a template line `<task>: <score…>` gets one `task: 4 — …` line per `=== TASK: name` header in the context
  (the output judge, F11);
- `Q1: <question>` / `A1: <answer>` templates get five questions on bullets spread evenly over the context, first to last — a
  bullet holding a URL gives a question about that URL (the leaking quiz collector, F09);
- any `=== LABEL: <slot> ===` header template gets two such blocks (F14's PRACTICE NOTE after the tool rewrite),
  each laid out like the headings and bullets the template shows under its header (the seeder's NOTE: the
  generic double writes prose under it and misses `## Key Points`); `vault-unified-4b-q8` still cannot;
- a section whose instructions ask for N bullets or facts ("At least 5 bullets", "5 to 15 concrete facts")
  gets N bullets (the brief blog-writer needs, F16; the deepener's facts).
- a prompt longer than `num_ctx` tokens at 4 characters per token (FAULTS.md's own measure; the servers count
  words) loses its front, instructions first, like a real overflow (F11): the template is gone.

The universal flaws (fences shown → fenced answer, `[Placeholder]` lines repeated) apply to these answers too.
"""

from __future__ import annotations

import dataclasses
import random
import re

from tests.servers.flawed_models import (
    DO_NOT_COPY,
    NO_FENCES,
    NO_PLACEHOLDERS,
    FlawedModels,
    Traits,
    _placeholder_lines,
    _prose,
    _split_example,
    _target_words,
    _vocabulary,
)
from tests.servers.protocol import Request

CHARS_PER_TOKEN = 4
DEFAULT_NUM_CTX = 4096
COUNT_TEMPLATE = re.compile(r"^\s*-\s*<[^>]+>\s*—\s*count=<n>", re.MULTILINE)
COUNTED = re.compile(r"^-\s*(.+?)\s*\(count=(\d+)\)\s*$", re.MULTILINE)
SCORE_TEMPLATE = re.compile(r"^<(\w+)>:\s*<score", re.MULTILINE)
TASK_HEADER = re.compile(r"^=== TASK: ([a-z][a-z-]*)", re.MULTILINE)
QUIZ_TEMPLATE = re.compile(r"^Q1:\s*<[^>]+>", re.MULTILINE)
BULLET = re.compile(r"^-\s+(?!<)(.+)$", re.MULTILINE)
BLOCK_TEMPLATE = re.compile(r"(=== ([A-Z][A-Z ]*?): )<([^>]+)>( ===)")
BODY_LINE = re.compile(r"^(?:#{1,3} |- |\s*$)")
BULLET_COUNT = re.compile(r"\b(\d{1,2})(?:\s*(?:to|-|–)\s*\d{1,2})?\s+(?:[a-z]+\s+){0,2}(?:bullets?|facts)\b|"
                          r"\b(\d{1,2})\s+bullets?\)?", re.IGNORECASE)
HEADING = re.compile(r"^(#{1,3}) (\S.*?)\s*$")


class FaultModels(FlawedModels):
    """`OllamaServer(FaultModels(seed=0))`: FlawedModels plus the data-reading behaviours of the module docstring."""

    def answer(self, request: Request, traits: Traits, rng: random.Random) -> str:
        request = overflowed(request)
        prompt = request.prompt
        body = None
        if request.json_schema is None and traits.prose_only_words is None:
            example, rest = _split_example(prompt)
            if example is None or DO_NOT_COPY.search(prompt):
                body = templated(rest, rng, traits.follows_notes)
        if body is None:
            return super().answer(request, traits, rng)
        _, rest = _split_example(prompt)
        placeholder_lines = [] if NO_PLACEHOLDERS.search(prompt) else _placeholder_lines(rest)
        if placeholder_lines:
            body = "\n".join(placeholder_lines) + "\n\n" + body
        if "```" in prompt and not NO_FENCES.search(prompt):
            body = f"```markdown\n{body}\n```"
        return body


def overflowed(request: Request) -> Request:
    """The request as the model sees it when its prompt overflows num_ctx at 4 characters per token."""
    limit = int(request.options.get("num_ctx") or DEFAULT_NUM_CTX) * CHARS_PER_TOKEN
    prompt = request.prompt
    if len(prompt) <= limit:
        return request
    return dataclasses.replace(request, messages=[{"role": "user", "content": prompt[-limit:]}])


def templated(text: str, rng: random.Random, follows: bool) -> str | None:
    """The answer to a data template the prompt shows, or None when it shows none of them."""
    vocab = _vocabulary(text)
    if COUNT_TEMPLATE.search(text):
        counted = [(name, int(n)) for name, n in COUNTED.findall(text)]
        trends = [f"- {name} — count={n}: shows up across several sources" for name, n in counted if n >= 2]
        once = [f"- {name}" for name, n in counted if n < 2][:5]
        head = "\n".join(trends) if trends else "No trends visible: every signal appears only once."
        return f"## Trends\n{head}\n\n## Watch list\n" + "\n".join(once or ["- nothing yet"])
    if SCORE_TEMPLATE.search(text):
        tasks = list(dict.fromkeys(TASK_HEADER.findall(text)))
        if tasks:
            return "\n".join(f"{t}: {3 + rng.randrange(2)} — {_prose(rng, vocab, 8)}" for t in tasks)
    if QUIZ_TEMPLATE.search(text):
        bullets = [b.strip() for b in BULLET.findall(text)] or vocab
        out = []
        for i in range(5):  # spread over the whole context, first to last bullet
            point = bullets[round(i * (len(bullets) - 1) / 4)]
            out += [f"Q{i + 1}: What is meant by: {point}?", f"A{i + 1}: {point}"]
        return "\n".join(out)
    if (b := BLOCK_TEMPLATE.search(text)) and (follows or b.group(2) != "NOTE"):
        body = _template_body(text, b.end())
        blocks = []
        for i in range(1, 3):
            title = " ".join(w.capitalize() for w in rng.sample(vocab, min(2, len(vocab))))
            head = f"{b.group(1)}{title}{b.group(4)}" if follows else f"**{b.group(2).title()} {i}: {title}**"
            inner = _fill(body, title, rng, vocab) if body else _prose(rng, vocab, 60)
            blocks.append(f"{head}\n{inner}")
        return "\n\n".join(blocks)
    if any(BULLET_COUNT.search(part) for _, part in _section_parts(text)):
        return _counted_sections(text, rng, vocab)
    return None


def _template_body(text: str, end: int) -> list[str]:
    """The lines a block template shows under its header (headings, bullets, blanks), up to the first other line."""
    lines = text[end:].split("\n")[1:]
    body: list[str] = []
    for line in lines:
        if not BODY_LINE.match(line):
            break
        body.append(line)
    while body and not body[-1].strip():
        body.pop()
    return body if any(line.strip() for line in body) else []


def _fill(body: list[str], title: str, rng: random.Random, vocab: list[str]) -> str:
    out = []
    for line in body:
        if line.startswith("# "):
            out.append(f"# {title}")
        elif line.startswith("- "):
            m = BULLET_COUNT.search(line)
            n = int(m.group(1) or m.group(2)) if m else 1
            out += [f"- {_prose(rng, vocab, 10)}" for _ in range(n)]
        else:
            out.append(line)
    return "\n".join(out)


def _section_parts(text: str) -> list[tuple[str, str]]:
    """(heading line, the instructions under it) for each heading of the template."""
    parts: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if HEADING.match(line):
            parts.append((line.strip(), ""))
        elif parts and line.strip():
            parts[-1] = (parts[-1][0], f"{parts[-1][1]} {line.strip()}")
    return parts


def _counted_sections(text: str, rng: random.Random, vocab: list[str]) -> str:
    """The template's sections in order; a section asking for N bullets or facts gets N bullets."""
    words = _target_words(text, 220)
    parts = _section_parts(text)
    out = []
    for head, instructions in parts:
        m = BULLET_COUNT.search(instructions)
        if m:
            n = int(m.group(1) or m.group(2))
            out.append(head + "\n" + "\n".join(f"- {_prose(rng, vocab, 12)}" for _ in range(n)))
        else:
            out.append(f"{head}\n\n{_prose(rng, vocab, max(12, words // len(parts)))}")
    return "\n\n".join(out)


__all__ = ["FaultModels", "overflowed", "templated"]
