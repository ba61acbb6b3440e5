"""What a collector emitted, held against what its inputs hold — pure functions over one traced run.

- `coverage`: per input file, which of its lines (items) reached the context, and whether the kept ones are a
  contiguous head or tail (the mark of a count limiter) or spread out (a filter).
- `section_flow`: per markdown section title of the files the collector read, whether it passed or was dropped;
  a *leak* is a passed section the prompt never asks for and the collector's code never names, beside one the
  prompt does ask for, in a collector that does drop other sections (so it means to select).
- `fork_count`: programs started per input item (a loop forking `sed`/`grep`/`wc` per file grows with the vault).
- `resize_for_room` / `trims`: how far a limit (or a bare `cat`) must shrink for the rendered prompt to fit
  `num_ctx`, from what each of its calls really printed, and `widen`: how far a starving limit can grow.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.process_trace import Call
from handlers.collector_limits import HEAD, TAIL, Limit
from handlers.shell_syntax import Command, Script, program_of

MIN_ITEM_CHARS = 8  # shorter lines ("---", "- [x]") are too common to tell which file they came from
STARVED_SHARE = 0.5  # a head/tail passing at most this share of a file's items starves the task...
STARVED_MISSING = 3  # ...when at least this many items are left out
LOOP_MIN_ITEMS = 5  # a loop over fewer items than this is not a cost that grows
LOOP_MIN_PER_ITEM = 3  # programs per item that make a loop a fault (one or two is a pipeline doing its job)
WIDEN = 5  # a starving limit grows this many times (the seed: head -10 → -50), up to the file and the room
SAFETY = 0.05  # share of num_ctx left free when sizing a trim
HEADING = re.compile(r"^(#{1,6})[ \t]+(\S.*?)[ \t]*#*[ \t]*$")
SECTION_TOOLS = frozenset({"awk", "gawk", "mawk", "sed", "grep", "egrep", "perl"})
HEADING_PATTERN = re.compile(r"\^\s*(?:\\?#|\[#\])")  # ^## … / ^\#… / ^[#]… inside a program
_WORD = re.compile(r"[a-z0-9]+")


def norm(line: str) -> str:
    return " ".join(line.split())


# ---- coverage -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputCoverage:
    path: str
    items: int  # lines of at least MIN_ITEM_CHARS characters
    kept: int  # of those, how many reached the context
    lines: int  # every line of the file (what `head -N` counts)
    size: int  # characters
    lines_kept: int  # head: the last kept line's number; tail: lines from the first kept one to the end
    shape: str  # head | tail | section (one heading's lines) | spread | all | none

    @property
    def share(self) -> float:
        return self.kept / self.items if self.items else 1.0

    @property
    def starved(self) -> bool:
        return (self.shape in ("head", "tail") and self.share <= STARVED_SHARE
                and self.items - self.kept >= STARVED_MISSING)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": round(self.share, 3), "starved": self.starved}


FIELD_SPLIT = re.compile(r"\s*(?:\||\t|;| — |,)\s*")
ROW_SHARE = 0.6  # a reformatted row counts as passed when this share of its fields sits on one context line
ROW_SCAN_LIMIT = 2_000_000  # items × context lines compared at most per file (row matching is quadratic)


def _fields(line: str) -> list[str]:
    return [f for f in (norm(x) for x in FIELD_SPLIT.split(line)) if f]


def _unique_fields(lines: Sequence[str]) -> list[list[str]]:
    """Per line, its fields long enough and found on no other line."""
    split = [[f for f in _fields(line) if len(f) >= MIN_ITEM_CHARS] for line in lines]
    counts = Counter(f for fields in split for f in set(fields))
    return [[f for f in fields if counts[f] == 1] for fields in split]


def _row_passed(fields: list[str], ctx_lines: Sequence[str], counts: Mapping[str, int]) -> bool:
    """Most of a delimited row's fields on one context line, one of them rare in its file (a date, a name, not
    `card`): the row passed, reformatted (`a,b,c` → `a | b`)."""
    sig = [f for f in fields if len(f) >= 3]
    if len(fields) < 3 or len(sig) < 2:
        return False
    need = max(2, math.ceil(ROW_SHARE * len(fields)))
    key = min(sig, key=lambda f: (counts.get(f, 0), -len(f)))
    if counts.get(key, 0) > 2:
        return False
    return any(key in line and sum(f in line for f in sig) >= need for line in ctx_lines)


def _tabular(items: list[tuple[int, str]]) -> bool:
    """Most lines split into the same number (≥ 3) of fields: rows of a table, worth matching field by field."""
    counts = Counter(len(_fields(s)) for _, s in items)
    width, n = counts.most_common(1)[0]
    return width >= 3 and n >= 0.6 * len(items)


def _header(lines: list[tuple[int, str]]) -> bool:
    """A first delimited line without digits over rows with digits: a column header, not an item."""
    if len(lines) < 2:
        return False
    first, second = lines[0][1], lines[1][1]
    return (len(_fields(first)) >= 3 and len(_fields(first)) == len(_fields(second))
            and not re.search(r"\d", first) and bool(re.search(r"\d", second)))


def coverage(context: str, files: Mapping[str, str]) -> list[InputCoverage]:
    """Per input file, its items that reached the context. A line that several input files hold (a heading every
    report starts with, a stock sentence) says nothing about which file passed: only a file's own lines count."""
    flat = "\n".join(norm(line) for line in context.splitlines())
    ctx_lines = [line for line in flat.splitlines() if line]
    holders = Counter(s for text in files.values() for s in {norm(line) for line in text.splitlines()})
    out = []
    for path, text in sorted(files.items()):
        lines = text.splitlines()
        items = [(i, norm(line)) for i, line in enumerate(lines)
                 if len(norm(line)) >= MIN_ITEM_CHARS and holders[norm(line)] == 1]
        if _header(items):
            items = items[1:]
        if len(items) < 2:
            continue
        fields = _unique_fields([s for _, s in items])
        verbatim = {k for k, (_, s) in enumerate(items) if s in flat}
        rows = not verbatim and _tabular(items) and len(items) * len(ctx_lines) <= ROW_SCAN_LIMIT  # reformatted
        counts = Counter(f for _, s in items for f in set(_fields(s))) if rows else Counter()
        kept = [k for k, ((_, s), f) in enumerate(zip(items, fields, strict=True))
                if k in verbatim or any(x in flat for x in f) or (rows and _row_passed(_fields(s), ctx_lines, counts))]
        shape = _shape(kept, len(items))
        if shape in ("head", "tail") and _one_section(lines, [items[k][0] for k in kept]):
            shape = "section"  # a section selected by its heading, not a count cut
        lines_kept = (items[kept[-1]][0] + 1 if shape == "head" else
                      len(lines) - items[kept[0]][0] if shape == "tail" else 0)
        out.append(InputCoverage(path, len(items), len(kept), len(lines), len(text), lines_kept, shape))
    return out


def _shape(kept: list[int], n: int) -> str:
    k = len(kept)
    if k == 0:
        return "none"
    if k == n:
        return "all"
    if kept == list(range(k)):
        return "head"
    if kept == list(range(n - k, n)):
        return "tail"
    return "spread"


def _one_section(lines: list[str], kept_lines: list[int]) -> bool:
    """The kept lines all sit under one markdown heading, and the file has other headings."""
    heads = [i for i, line in enumerate(lines) if HEADING.match(line)]
    if len(heads) < 2 or not kept_lines:
        return False
    owner = [max((h for h in heads if h < i), default=-1) for i in kept_lines]
    return len(set(owner)) == 1 and owner[0] >= 0


# ---- sections -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionFlow:
    level: int  # heading level of the asked sections
    passed: tuple[str, ...]
    dropped: tuple[str, ...]
    asked: tuple[str, ...]  # passed titles the prompt asks for
    leaked: tuple[str, ...]  # passed titles the prompt never asks for and the collector never names
    heading_kept: bool  # the asked sections' heading lines reached the context too
    files: int  # input files where it leaks

    @property
    def leaks(self) -> bool:
        return bool(self.leaked and self.asked)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}, "leaks": self.leaks}


def sections_of(text: str) -> list[tuple[int, str, list[str]]]:
    """(level, title, body lines) per markdown heading; front matter and text before the first heading skipped."""
    out: list[tuple[int, str, list[str]]] = []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2), []))
        elif out and len(norm(line)) >= MIN_ITEM_CHARS - 2:
            out[-1][2].append(norm(line))
    return out


def words_of(text: str) -> list[str]:
    """Lower-case words with a plural `s` dropped: `Key Points` and 'the key point' read alike."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in _WORD.findall(text.lower())]


def mentions(text: str, title: str) -> bool:
    """The title's words, in order and adjacent, somewhere in the text."""
    want = words_of(title)
    have = words_of(text)
    return bool(want) and any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


def names(code: str, title: str) -> bool:
    """Every word of the title is written in the collector's code (its selection names the section)."""
    have = set(words_of(code))
    return all(w in have for w in words_of(title))


def section_selectors(script: Script) -> list[Command]:
    """Commands whose program or pattern anchors on a markdown heading: the collector means to select sections."""
    out = []
    for c in script.commands:
        if c.name in SECTION_TOOLS:
            prog, _ = program_of(c)
            if prog is not None and HEADING_PATTERN.search(prog.value):
                out.append(c)
    return out


def section_flow(context: str, files: Mapping[str, str], prompt: str, code: str,
                 selects: bool = False) -> SectionFlow | None:
    """Per input file the collector passed part of: which sections went through. A leak needs, in one file, a
    passed section the prompt asks for and a passed one it does not ask for (nor the code names), from a collector
    that means to select: it dropped a section there, or its code anchors a pattern on a heading (`selects`)."""
    flat = "\n".join(norm(line) for line in context.splitlines())
    ctx_lines = set(flat.splitlines())
    passed: Counter[tuple[int, str]] = Counter()
    dropped: Counter[tuple[int, str]] = Counter()
    leaked: Counter[tuple[int, str]] = Counter()
    asked: Counter[tuple[int, str]] = Counter()
    headings_in: set[tuple[int, str]] = set()
    touched = leaking = 0
    for text in files.values():
        secs = [(lvl, title, body) for lvl, title, body in sections_of(text) if body]
        if len(secs) < 2:
            continue
        kept = [sum(1 for b in body if b in ctx_lines or b in flat) for _, _, body in secs]
        if not any(kept):
            continue
        touched += 1
        ok = [(lvl, t) for (lvl, t, body), k in zip(secs, kept, strict=True) if 2 * k >= len(body)]
        gone = [(lvl, t) for (lvl, t, _), k in zip(secs, kept, strict=True) if k == 0]
        passed.update(ok)
        dropped.update(gone)
        headings_in |= {key for key in ok if norm("#" * key[0] + " " + key[1]) in ctx_lines}
        wanted = [key for key in ok if mentions(prompt, key[1])]
        if not wanted or not (gone or selects):
            continue
        level = min(lvl for lvl, _ in wanted)
        extra = [key for key in ok if key not in wanted and key[0] <= level and not names(code, key[1])]
        asked.update(wanted)
        if extra:
            leaking += 1
            leaked.update(extra)
    if not touched:
        return None
    level = min((lvl for lvl, _ in asked), default=2)
    return SectionFlow(level, tuple(key[1] for key in passed), tuple(key[1] for key in dropped if not passed[key]),
                       tuple(key[1] for key in asked if key[0] == level), tuple(key[1] for key in leaked),
                       any(key in headings_in for key in asked), leaking)


# ---- forks ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForkCount:
    calls: int
    items: int  # loop iterations: input files handled one at a time
    per_item: int  # programs started per iteration
    by_name: dict[str, int]

    @property
    def loop(self) -> bool:
        return self.items >= LOOP_MIN_ITEMS and self.per_item >= LOOP_MIN_PER_ITEM

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loop": self.loop}


def fork_count(calls: Sequence[Call], file_of: Callable[[Call, str], str | None],
               sizes: Iterable[int] = ()) -> ForkCount:
    """Iterations: the files named alone by a call, or another count the caller knows the loop may run over
    (`sizes`: declared input files, the rows of a file a `while read` loop reads); per item: each program's
    calls over the iterations, for programs started at least once per iteration."""
    by_name = Counter(c.name for c in calls)
    singly: set[str] = set()
    for c in calls:
        named = {f for a in c.args if (f := file_of(c, a)) is not None}
        if len(named) == 1:
            singly |= named
    best: tuple[int, float, int] = (0, 0.0, 0)  # programs per item, -misfit, items
    for items in {len(singly), *sizes}:
        if items < LOOP_MIN_ITEMS:
            continue
        counts = [n for n in by_name.values() if n >= 0.9 * items]
        per = sum(round(n / items) for n in counts)
        misfit = sum(abs(n / items - round(n / items)) for n in counts)
        best = max(best, (per, -misfit, items))
    return ForkCount(len(calls), best[2], best[0], dict(by_name.most_common()))


# ---- sizes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resize:
    """A measured new size for one cap: a `limit` literal to rewrite, or a bare `cat` to cap."""

    kind: str  # limit | cat | loop
    file: str  # the text holding it: the collector script, or vault.yml for the collect line
    start: int  # the number's span (limit), the cat command's span (cat), the loop's header (loop)
    stop: int
    old: int  # lines (or bytes, or items) it passes now
    new: int
    end: str  # head | tail (for a loop: keep the first or the last files)
    unit: str
    offset: int
    shape: str
    tokens_before: int | None
    tokens_after: int | None
    why: str
    input: str = ""  # the starved input file a widening is for

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calls_of(command: Command, calls: Sequence[Call]) -> list[Call]:
    """The calls a static command made: same program, its literal arguments among theirs in order."""
    literal = [w.value for w in command.args if not w.dynamic]
    out = []
    for c in calls:
        if c.name != command.name:
            continue
        it = iter(c.args)
        if all(any(a == want for a in it) for want in literal):
            out.append(c)
    return out


def _pieces(text: str, unit: str) -> list[int]:
    """Cumulative characters after each line (or character) of a call's output."""
    if unit == "bytes":
        return list(range(1, len(text) + 1))
    cum, total = [], 0
    for line in text.splitlines(keepends=True):
        total += len(line)
        cum.append(total)
    return cum


def _kept_chars(cum: list[int], n: int, end: str) -> int:
    if n <= 0:
        return 0
    if n >= len(cum):
        return cum[-1] if cum else 0
    return cum[n - 1] if end == HEAD else cum[-1] - cum[-n - 1]


def shrink(outputs: Sequence[str], unit: str, end: str, old: int, excess_chars: float) -> int | None:
    """The largest n < old whose cap on these outputs removes at least `excess_chars`; None if none does."""
    cums = [_pieces(o, unit) for o in outputs]
    total = sum(c[-1] for c in cums if c)

    def removed(n: int) -> int:
        return total - sum(_kept_chars(c, n, end) for c in cums)

    if old <= 1 or removed(1) < excess_chars:
        return None
    lo, hi = 1, old - 1  # removed() falls as n grows: find the largest n that still removes enough
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if removed(mid) >= excess_chars:
            lo = mid
        else:
            hi = mid - 1
    return lo


def trims(script: Script, script_path: str, limits: Sequence[Limit], calls: Sequence[Call], context: str,
          excess_tokens: float, tokens_per_char: float, tokens: int,
          resolve: Callable[[Call, str], str | None] | None = None) -> list[Resize]:
    """Every cap that alone would bring the prompt under budget, best first: a loop over files keeping fewer of
    them (first when its files pass whole: cutting each would cut them all), then shell limits and bare `cat`s
    whose calls' output reached the context verbatim, biggest contributor first, sized from those outputs."""
    excess = excess_tokens / tokens_per_char
    found: list[tuple[tuple[int, int], Resize]] = []
    binding: set[int] = set()  # starts of the limit commands that cut some call's output
    for lim in limits:
        if lim.command is None:
            continue
        outs = [c.output for c in calls_of(lim.command, calls) if c.output and c.output.strip() in context]
        if any(len(_pieces(o, lim.unit)) >= lim.n for o in outs):
            binding.add(lim.command.start)
        new = shrink(outs, lim.unit, lim.end, lim.n, excess) if outs else None
        if new is not None:
            weight = sum(len(o) for o in outs)
            found.append(((1, -weight), Resize(
                "limit", script_path, lim.start, lim.stop, lim.n, new, lim.end, lim.unit, lim.offset, lim.shape,
                tokens, _after(tokens, weight, outs, new, lim, tokens_per_char),
                f"{len(outs)} call(s) of `{lim.shape}` printed {weight} characters")))
    for cat in (c for c in script.named("cat") if not any(lim.command == c for lim in limits)):
        if any(m.name in ("head", "tail", "sed", "awk") for m in script.pipeline_of(cat) if m.start > cat.start):
            continue  # capped further down its pipeline: that cap is the one to size
        outs = [c.output for c in calls_of(cat, calls) if c.output and c.output.strip() in context]
        longest = max((len(o.splitlines()) for o in outs), default=0)
        end = TAIL if _ascending_dates(outs) else HEAD
        new = shrink(outs, "lines", end, longest, excess) if outs else None
        if new is not None:
            weight = sum(len(o) for o in outs)
            lim = Limit(end, "lines", longest, cat.start, cat.end)
            found.append(((1, -weight), Resize(
                "cat", script_path, cat.start, cat.end, longest, new, end, "lines", 0, script.text[cat.start:cat.end],
                tokens, _after(tokens, weight, outs, new, lim, tokens_per_char),
                f"{len(outs)} call(s) of `cat` printed {weight} characters, no cap")))
    if resolve is not None:
        found += [(((0 if whole else 1), -weight), r) for weight, whole, r in
                  _loop_trims(script, script_path, calls, context, excess, tokens, tokens_per_char, resolve, binding)]
    return [r for _, r in sorted(found, key=lambda x: x[0])]


FOR_HEADER = re.compile(r"for\s+(?P<var>[A-Za-z_]\w*)\s+in\s+(?P<words>[^;\n]+?)\s*(?:;|\n)\s*do$", re.DOTALL)


def _loop_trims(script: Script, script_path: str, calls: Sequence[Call], context: str, excess: float, tokens: int,
                tokens_per_char: float, resolve: Callable[[Call, str], str | None],
                binding: set[int]) -> list[tuple[int, bool, Resize]]:
    """(weight, files pass whole, resize) for each `for f in GLOB` loop whose per-file output can shed enough
    by keeping fewer files: the newest when the names are dated, else the first."""
    out = []
    for loop in script.loops:
        m = FOR_HEADER.fullmatch(script.text[loop.start:loop.body_start].strip())
        if m is None or "$(" in m.group("words") or "`" in m.group("words"):
            continue
        refs = (f"${loop.var}", f"${{{loop.var}}}")
        body = [c for c in script.commands if loop.body_start <= c.start < loop.body_end
                and any(w.value in refs for w in (*c.args, *(r for _, r in c.redirects)))]
        chars: Counter[str] = Counter()
        for cmd in body:
            for call in calls_of(cmd, calls):
                named = next((f for a in call.args if (f := resolve(call, a)) is not None), None)
                if named and call.output and call.output.strip() in context:
                    chars[named] += len(call.output)
        if len(chars) < 2:
            continue
        files = sorted(chars)
        end = TAIL if _ascending_dates(files) else HEAD
        dropped, keep = 0, len(files)
        for f in files if end == TAIL else reversed(files):
            if dropped >= excess or keep <= 1:
                break
            dropped, keep = dropped + chars[f], keep - 1
        if dropped < excess:
            continue
        whole = not any(c.start in binding for c in body)
        out.append((sum(chars.values()), whole, Resize(
            "loop", script_path, loop.start, loop.body_start, len(files), keep, end, "items", 0,
            f"for {loop.var} in {m.group('words')}", tokens, round(tokens - dropped * tokens_per_char),
            f"{len(files)} files pass {sum(chars.values())} characters; the {'newest' if end == TAIL else 'first'} "
            f"{keep} fit")))
    return out


def _after(tokens: int, weight: int, outs: Sequence[str], n: int, lim: Limit, tokens_per_char: float) -> int:
    kept = sum(_kept_chars(_pieces(o, lim.unit), n, lim.end) for o in outs)
    return round(tokens - (weight - kept) * tokens_per_char)


def _ascending_dates(outputs: Sequence[str]) -> bool:
    """Dated lines oldest first (a log that grows at the end): a cap should keep the end."""
    dates = re.findall(r"\b(20\d\d-\d\d-\d\d)", "\n".join(outputs))
    return len(dates) >= 3 and dates[0] < dates[-1]


def proportional(limits: Sequence[Limit], file: str, share: float, tokens: int) -> list[Resize]:
    """Without call outputs (a Python collector): the largest limit scaled by the share of the context to keep."""
    if not limits or share >= 1:
        return []
    lim = max(limits, key=lambda x: x.n)
    new = max(1, math.floor(lim.n * share))
    if new >= lim.n:
        return []
    return [Resize("limit", file, lim.start, lim.stop, lim.n, new, lim.end, lim.unit, lim.offset, lim.shape, tokens,
                   None, f"scaled by the share of the context that fits ({share:.2f}); no call output to size it")]


def widen(lim: Limit, cov: InputCoverage, file: str, room_tokens: float | None, tokens_per_char: float,
          context_kept_chars: int) -> Resize | None:
    """A starving limit grown WIDEN times, never past the file and never past the room left in num_ctx."""
    total = cov.size if lim.unit == "bytes" else (cov.items if lim.unit == "items" else cov.lines)
    new = min(total, max(lim.n + 1, lim.n * WIDEN))
    why = f"{cov.kept} of {cov.items} items of {cov.path} reach the context ({cov.shape} {lim.n})"
    if room_tokens is not None and cov.kept:
        per_item = max(1.0, context_kept_chars / cov.kept * tokens_per_char)
        room_items = math.floor(room_tokens / (per_item if lim.unit != "bytes" else tokens_per_char))
        if lim.n + room_items < new:
            new = lim.n + max(0, room_items)
            why += f"; num_ctx leaves room for {max(0, room_items)} more"
    if new <= lim.n:
        return None
    return Resize("limit", file, lim.start, lim.stop, lim.n, new, lim.end, lim.unit, lim.offset, lim.shape, None, None,
                  why, cov.path)


def file_of_call(root: Path) -> Callable[[Call, str], str | None]:
    """Resolve a call's argument to a vault-relative file path (None: not a file inside the vault)."""
    base = root.resolve()

    def resolve(call: Call, arg: str) -> str | None:
        if not arg or arg.startswith("-") or "\n" in arg or len(arg) > 1024:
            return None
        try:
            p = (Path(call.cwd) / arg).resolve()
            rel = p.relative_to(base)
        except (ValueError, OSError):
            return None
        return rel.as_posix() if p.is_file() else None

    return resolve


__all__ = [
    "ForkCount",
    "InputCoverage",
    "Resize",
    "SectionFlow",
    "calls_of",
    "coverage",
    "file_of_call",
    "fork_count",
    "mentions",
    "names",
    "proportional",
    "section_flow",
    "section_selectors",
    "sections_of",
    "shrink",
    "trims",
    "widen",
    "words_of",
]
