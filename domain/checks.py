"""Deterministic checks on one run: the task's contract (`expect`) and the failures every task can have.

Pure functions of text and numbers. The detectors below (`find_placeholders`, `find_fences`, ...) are shared
with `domain.signatures`, so a check and a signature never disagree about what a leak or a fence is.
A failed *hard* check is a guardrail (it vetoes a keep); a *soft* one is advisory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from jsonschema.validators import validator_for

from domain import prompt_shapes
from domain.config import BlockSpec, Expect
from domain.runs import Check, RunResult

TRUNCATED_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
NEAR_IDENTICAL = 0.95  # similarity ratio at or above which two outputs count as the same output
THINKING_SHARE = 0.5  # thinking tokens at or above this share of num_predict burn the answer's budget
EXCERPT = 200  # characters of evidence quoted in a detail or a signature
_SIMILARITY_CHARS = 2000  # up to this length texts are compared character by character ...
_SIMILARITY_WORDS = 2000  # ... beyond it word by word, on the first words only: bounded cost for huge outputs

# Bracketed Title-case words, the way templates spell slots: [Tool], [Your Name], [DATE]. Not links
# [text](url), references [text][1] / "[text]: http…", wiki links [[Note]], callouts [!NOTE], footnotes [^1],
# checkboxes [x], citations [1] / [Smith 2020].
_BRACKET_SLOT = re.compile(
    r"(?<![\[!\w])\[([A-Z][A-Za-z]+(?:[ _/-][A-Z][A-Za-z]+){0,3})\](?![\[(\]])(?!:\s*(?:<?https?://|/|#))"
)
_BRACKET_VERB = re.compile(r"(?<![\[\w])\[(?:insert|your|add|enter|fill in|put)\b[^\]\n]{0,40}\]", re.IGNORECASE)
# {var} / {{ var }} template slots; not LaTeX (\frac{a}{b}, x^{n}), shell ${x}, or JSON ({"a": 1}).
_CURLY_SLOT = re.compile(r"(?<![\w\\{$^}])\{([A-Za-z_][\w-]{0,40})\}(?!\})")
_JINJA_SLOT = re.compile(r"\{\{\s*[A-Za-z_][\w.]{0,40}\s*\}\}")
_FENCE = re.compile(r"^ {0,3}(```|~~~)(.*)$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.MULTILINE)


# ---- shared detectors ---------------------------------------------------------------------------


def clip(text: str, limit: int = EXCERPT) -> str:
    """Evidence quotes stay short: one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def normalise(text: str) -> str:
    return " ".join(text.split())


def _matcher(a: str, b: str) -> SequenceMatcher[Any]:
    """Characters for short texts (one changed word in a sentence matters), words for long ones (bounded cost)."""
    if len(a) <= _SIMILARITY_CHARS and len(b) <= _SIMILARITY_CHARS:
        return SequenceMatcher(None, a, b, autojunk=False)
    return SequenceMatcher(None, a.split()[:_SIMILARITY_WORDS], b.split()[:_SIMILARITY_WORDS], autojunk=False)


def similarity(a: str, b: str) -> float:
    """Similarity ratio in [0, 1] after whitespace normalisation (1.0 = the same text)."""
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return 1.0
    if not na or not nb:
        return 0.0
    return _matcher(na, nb).ratio()


def near_identical(a: str, b: str, threshold: float = NEAR_IDENTICAL) -> bool:
    """Same output give or take a date or a word; the cheap upper bounds reject most pairs in linear time."""
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return True
    if not na or not nb:
        return False
    matcher = _matcher(na, nb)
    return (
        matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold
    )


def is_truncated(done_reason: str) -> bool:
    return done_reason.strip().lower() in TRUNCATED_REASONS


def overflowed(prompt_tokens: int, num_ctx: int | None, done_reason: str) -> bool:
    """The prompt filled the context window (Ollama clamps prompt_tokens to num_ctx), or the backend said so."""
    return bool(num_ctx and prompt_tokens >= num_ctx) or "context" in done_reason.lower()


def thinking_burned(thinking_tokens: int, num_predict: int | None) -> bool:
    return bool(num_predict) and thinking_tokens >= THINKING_SHARE * (num_predict or 0)


_PROSE_FENCES = frozenset({"", "markdown", "md", "text", "txt", "plain"})


def strip_code(text: str, keep_prose_fences: bool = False) -> str:
    """The text outside code: inline spans always go; fenced blocks go, except (with `keep_prose_fences`)
    bare/markdown/text fences, whose content is still prose a model wrapped by mistake (research-radar)."""
    kept: list[str] = []
    drop = False
    opening: re.Match[str] | None = None
    for line in text.splitlines():
        fence = _FENCE.match(line)
        if fence and opening is None:
            opening = fence
            drop = not (keep_prose_fences and fence.group(2).strip().lower() in _PROSE_FENCES)
            continue
        if fence and opening is not None and fence.group(1) == opening.group(1) and not fence.group(2).strip():
            opening, drop = None, False
            continue
        if not drop:
            kept.append(_INLINE_CODE.sub("", line))
    return "\n".join(kept)


def find_placeholders(text: str, prose: bool = True) -> list[str]:
    """Template slots that reached the output literally: [Tool], [Your Name], [insert date], {date}, {{ name }}.

    Code is not searched; in a prose task a bare or ```markdown fence is still prose."""
    plain = strip_code(text, keep_prose_fences=prose)
    found: list[tuple[int, str]] = []
    for pattern in (_BRACKET_SLOT, _BRACKET_VERB, _CURLY_SLOT, _JINJA_SLOT):
        found.extend((m.start(), m.group(0)) for m in pattern.finditer(plain))
    return [s for _, s in sorted(found)]


_ANY_BRACKET = re.compile(r"(?<![\[\w])\[([^\[\]\n]{3,80})\](?![\[(\]])")
_ANY_CURLY = re.compile(r"(?<![\w\\{$^}])\{([^{}\n]{1,40})\}(?!\})")


def find_prompt_slots(output: str, prompt_text: str, prose: bool = True) -> list[str]:
    """Any [bracketed] or {braced} span the output shares with the prompt template, and any of the template's
    own slots (`domain.prompt_shapes.slots`: `<name>`, `[Payee]`, `___`, …) the output repeats literally."""
    if not prompt_text:
        return []
    plain = strip_code(output, keep_prose_fences=prose)
    found: list[str] = []
    for pattern in (_ANY_BRACKET, _ANY_CURLY):
        for m in pattern.finditer(plain):
            if re.search(r"[A-Za-z]", m.group(1)) and m.group(0) in prompt_text:
                found.append(m.group(0))
    for slot in prompt_shapes.slots(prompt_text):
        alone = r"(?<![\w_])" + re.escape(slot.text) + r"(?![\w_])"  # a blank '___' inside '____' is not it
        if re.search(alone if slot.shape == "blank" else re.escape(slot.text), plain):
            found.append(slot.text)
    return list(dict.fromkeys(found))


def find_fences(text: str) -> list[tuple[int, str]]:
    """(line number, fence line) for every ``` or ~~~ fence line."""
    lines = text.splitlines()
    return [(i + 1, line.strip()) for i, line in enumerate(lines) if _FENCE.match(line)]


def line_at(text: str, pos: int) -> str:
    """The whole line around a match: the evidence a person recognises."""
    end = text.find("\n", pos)
    return text[text.rfind("\n", 0, pos) + 1 : end if end >= 0 else len(text)]


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every markdown ATX heading."""
    return [(len(m.group(1)), m.group(2)) for m in _HEADING.finditer(text)]


def _title(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(":").strip()


def _section_present(section: str, found: list[tuple[int, str]]) -> bool:
    """`## Goals` needs a level-2 heading titled Goals (or "Goals (3)", "Goals: today"); `Goals` any level."""
    m = re.match(r"^\s*(#{1,6})\s*(.+)$", section)
    level, want = (len(m.group(1)), _title(m.group(2))) if m else (None, _title(section))
    for lvl, title in found:
        got = _title(title)
        if level is not None and lvl != level:
            continue
        if got == want or (got.startswith(want) and not got[len(want)].isalnum()):
            return True
    return False


def missing_sections(text: str, sections: Sequence[str]) -> list[str]:
    found = headings(text)
    return [s for s in sections if not _section_present(s, found)]


_LIST_MARK = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-+:?\s*\|)+\s*(?::?-+:?\s*)?$")  # |---|:--:| under a header row
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
COPY_MIN_CHARS, COPY_MIN_WORDS = 24, 4  # a copied line must be this long to be more than a common phrase


def _flat(text: str) -> str:
    return " ".join(text.casefold().split())


def find_copied_lines(output: str, prompt_text: str, context: str = "") -> list[str]:
    """Output lines that the prompt template already contains (its example, its rules), and the collected
    context does not: the model reproduced its instructions instead of the day's data."""
    prompt, data = _flat(prompt_text), _flat(context)
    copied: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if _HEADING.match(line):
            continue  # required headings are structure, not a copied example
        if _TABLE_RULE.match(line) or (i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1])):
            continue  # a table's header row and rule are its format too
        flat = _flat(_LIST_MARK.sub("", line).strip("*_`\"' "))
        if len(flat) < COPY_MIN_CHARS or len(flat.split()) < COPY_MIN_WORDS:
            continue
        if flat in prompt and flat not in data and line.strip() not in copied:
            copied.append(line.strip())
    return copied


# Conditional formatting instructions a template gives and a small model echoes: "(or 'quiet' if 0)".
_INSTRUCTIONS = (
    re.compile(r"\((?:or|else)\s+[\"'‘“][^)\n]{1,80}[\"'’”]\s*(?:if|when|unless|for)\b[^)\n]{0,40}\)", re.IGNORECASE),
    re.compile(
        r"\((?:if|when)\s+(?:none|applicable|empty|nothing|zero|0|there (?:are|is) no(?:ne)?)\b[^)\n]{0,40}\)",
        re.IGNORECASE,
    ),
    re.compile(r"\((?:leave|omit|skip|write|say|use|put)\b[^)\n]{0,60}\bif\b[^)\n]{0,40}\)", re.IGNORECASE),
)
_PARENTHETICAL = re.compile(r"\([^()\n]{6,120}\)")
_INSTRUCTION_WORD = re.compile(r"\b(?:if|or|e\.g\.|optional|at most|max|words?|bullets?)\b", re.IGNORECASE)


def find_instruction_leaks(output: str, prompt_text: str = "") -> list[str]:
    """Parentheticals that are instructions, not content: conditional ones anywhere, any instruction-like
    parenthetical the prompt itself contains, and any conditional aside of the prompt's template lines
    (`domain.prompt_shapes.conditionals`: "— if none, write 'x'", "(or 'x' unless …)") repeated in the output."""
    prose = strip_code(output)
    found = [m.group(0) for pattern in _INSTRUCTIONS for m in pattern.finditer(prose)]
    if prompt_text:
        prompt = _flat(prompt_text)
        for m in _PARENTHETICAL.finditer(prose):
            text = m.group(0)
            if _INSTRUCTION_WORD.search(text) and _flat(text) in prompt:
                found.append(text)
        flat_output = _flat(prose)
        for aside in prompt_shapes.conditionals(prompt_text):
            core = _flat(aside.action)
            if len(core) >= 8 and core in flat_output:
                found.append(aside.text.strip())
    return list(dict.fromkeys(found))


def count_bullets(text: str) -> int:
    """Bullet or numbered lines: what `requires.min_facts` counts."""
    return len(_BULLET.findall(text))


def count_blocks(text: str, spec: BlockSpec) -> tuple[int, str]:
    """How many blocks the output has, and the first one's header for evidence."""
    matches = list(re.finditer(spec.regex, text, re.MULTILINE))
    return len(matches), (clip(matches[0].group(0), 80) if matches else "")


# ---- contract checks ----------------------------------------------------------------------------


def contract_checks(output: str, expect: Expect, previous_outputs: Sequence[str]) -> list[Check]:
    """One hard check per clause the task declares in `expect`; undeclared clauses produce no check.

    `previous_outputs` are the task's earlier outputs, newest last; only the last
    `expect.distinct_from_previous` of them are compared."""
    checks: list[Check] = []
    words = len(output.split())
    if expect.min_words is not None:
        checks.append(Check("min_words", words >= expect.min_words, f"{words} words (min {expect.min_words})"))
    if expect.max_words is not None:
        checks.append(Check("max_words", words <= expect.max_words, f"{words} words (max {expect.max_words})"))
    if expect.sections:
        checks.append(_sections_check(output, expect.sections))
    if expect.blocks is not None:
        checks.append(_blocks_check(output, expect.blocks))
    if expect.forbid:
        checks.append(_forbid_check(output, expect.forbid))
    if expect.distinct_from_previous:
        checks.append(_distinct_check(output, list(previous_outputs)[-expect.distinct_from_previous :]))
    if expect.json_schema is not None:
        checks.append(_json_check(output, expect.json_schema))
    return checks


def _sections_check(output: str, sections: Sequence[str]) -> Check:
    missing = missing_sections(output, sections)
    if not missing:
        return Check("sections", True, f"all {len(sections)} sections present")
    seen = ", ".join("#" * lvl + " " + t for lvl, t in headings(output)[:8]) or "none"
    return Check("sections", False, clip(f"missing {', '.join(missing)} (headings found: {seen})"))


def _blocks_check(output: str, spec: BlockSpec) -> Check:
    n, first = count_blocks(output, spec)
    bounds = f"min {spec.min}" + (f", max {spec.max}" if spec.max is not None else "")
    ok = n >= spec.min and (spec.max is None or n <= spec.max)
    example = f"; first: {first!r}" if first else ""
    return Check("blocks", ok, clip(f"{n} blocks matching {spec.regex!r} ({bounds}){example}"))


def _forbid_check(output: str, patterns: Sequence[str]) -> Check:
    hits = []
    for pattern in patterns:
        m = re.search(pattern, output, re.MULTILINE)
        if m:
            hits.append(f"{pattern!r} matched {clip(line_at(output, m.start()), 100)!r}")
    if not hits:
        return Check("forbid", True, f"none of {len(patterns)} forbidden patterns matched")
    return Check("forbid", False, clip("; ".join(hits)))


def _distinct_check(output: str, previous: list[str]) -> Check:
    if not previous:
        return Check("distinct_from_previous", True, "no previous outputs to compare")
    for back, earlier in enumerate(reversed(previous), start=1):
        if normalise(earlier) == normalise(output):
            return Check("distinct_from_previous", False, f"identical to the output {back} run(s) back")
        if near_identical(output, earlier):
            ratio = similarity(output, earlier)
            return Check("distinct_from_previous", False, f"{ratio:.2f} similar to the output {back} run(s) back")
    return Check("distinct_from_previous", True, f"differs from the last {len(previous)} output(s)")


def _json_check(output: str, schema: dict[str, Any]) -> Check:
    try:
        value = json.loads(output)
    except ValueError as e:
        return Check("json_schema", False, clip(f"not JSON ({e}); starts {output.strip()[:60]!r}"))
    error = next(iter(validator_for(schema)(schema).iter_errors(value)), None)
    if error is None:
        return Check("json_schema", True, "valid against the schema")
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return Check("json_schema", False, clip(f"at {where}: {error.message}"))


# ---- universal checks ---------------------------------------------------------------------------


def universal_checks(run: RunResult, *, prose: bool = True) -> list[Check]:
    """The failures any task can have, always all reported (passed or not), so scores carry the evidence.

    `prose` is the task's `expect.prose`: code fences only fail where prose is expected."""
    num_ctx = run.num_ctx or _int(run.options.get("num_ctx"))
    num_predict = run.num_predict or _int(run.options.get("num_predict"))
    output = run.output
    checks = [
        Check("failed", run.status == "ok", f"status {run.status}" + (f": {clip(run.error)}" if run.error else "")),
        Check("empty", bool(output.strip()), f"{len(output.split())} words"),
        _truncated_check(run, num_predict),
        Check(
            "context_overflow",
            not overflowed(run.prompt_tokens, num_ctx, run.done_reason),
            f"prompt {run.prompt_tokens} tokens, num_ctx {num_ctx or 'unset'}, done_reason {run.done_reason!r}",
        ),
        Check(
            "thinking_burn",
            not thinking_burned(run.thinking_tokens, num_predict),
            f"thinking {run.thinking_tokens} tokens of num_predict {num_predict or 'unset'}",
            hard=False,
        ),
        _placeholder_check(output, prose),
        _fence_check(output, prose),
    ]
    return checks


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _truncated_check(run: RunResult, num_predict: int | None) -> Check:
    detail = f"done_reason {run.done_reason!r} after {run.output_tokens} tokens (num_predict {num_predict or 'unset'})"
    if is_truncated(run.done_reason):
        return Check("truncated", False, clip(f"{detail}; ends {run.output.rstrip()[-80:]!r}"))
    return Check("truncated", True, detail)


def _placeholder_check(output: str, prose: bool) -> Check:
    slots = find_placeholders(output, prose)
    if not slots:
        return Check("placeholder_leak", True, "no template slots in the output")
    distinct = list(dict.fromkeys(slots))
    return Check("placeholder_leak", False, clip(f"{len(slots)} literal slot(s): {', '.join(distinct[:8])}"))


def _fence_check(output: str, prose: bool) -> Check:
    if not prose:
        return Check("code_fences", True, "prose not expected: fences allowed")
    fences = find_fences(output)
    if not fences:
        return Check("code_fences", True, "no code fences")
    line, text = fences[0]
    return Check("code_fences", False, clip(f"{len(fences)} fence line(s), first at line {line}: {text!r}"))
