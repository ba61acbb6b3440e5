"""Path-glob algebra for the data-flow graph: can two vault globs name the same file?

A producer declares `Drafts/brief-{date}.md`, a consumer reads `Drafts/brief-*.md`; the edge exists when
some path could match both. Testing against files on disk would miss pipelines that have not run yet, so
the test is symbolic and exact:

* A glob is split on `/` into segments; a segment that is exactly `**` matches zero or more segments.
* Inside a segment: `*` (any run of non-`/` characters, empty included), `?` (one character), `[abc]`,
  `[a-z]`, `[!x]` (character classes), `{name}` (a placeholder such as `{date}`: treated as `*`), and
  `{a,b}` (alternatives, expanded first). Everything else is literal.
* Two segments overlap when the product of their two automata reaches both ends: a breadth-first search over
  pairs of positions, where a step consumes one character that both current classes admit. The same search
  over segment lists (with `**` as a self-loop) decides whole paths. The alphabet is open, so two negated
  classes always share a character.

The search is sound and complete for this language: `overlaps` is True exactly when a common path exists.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

_PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CharClass:
    """A set of characters; `negated` means every character except `chars` (and never `/`)."""

    chars: frozenset[str]
    negated: bool = False

    def meets(self, other: CharClass) -> bool:
        if self.negated and other.negated:
            return True  # open alphabet: infinitely many characters are in neither exclusion set
        if self.negated:
            return bool(other.chars - self.chars)
        if other.negated:
            return bool(self.chars - other.chars)
        return bool(self.chars & other.chars)

    def admits(self, ch: str) -> bool:
        return (ch not in self.chars) if self.negated else (ch in self.chars)


ANY = CharClass(frozenset(), negated=True)
STAR = "*"
GLOBSTAR = "**"
Token = CharClass | str  # str is only ever STAR
Segment = tuple[Token, ...]


def expand_braces(glob: str) -> list[str]:
    """`a/{x,y}.md` -> [`a/x.md`, `a/y.md`]; `{date}` (no comma) stays, it is a placeholder."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", glob)
    if match is None:
        return [glob]
    out: list[str] = []
    for alt in match.group(1).split(","):
        out.extend(expand_braces(glob[: match.start()] + alt + glob[match.end():]))
    return out


def _class(body: str) -> CharClass:
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return CharClass(frozenset(chars), negated)


def parse_segment(text: str) -> Segment:
    """One path segment into tokens; consecutive stars collapse (they mean the same)."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "*" or (ch == "{" and (end := text.find("}", i)) > i and _PLACEHOLDER.match(text[i + 1 : end])):
            if ch == "{":
                i = text.find("}", i)
            if not tokens or tokens[-1] != STAR:
                tokens.append(STAR)
        elif ch == "?":
            tokens.append(ANY)
        elif ch == "[" and (end := text.find("]", i + 2)) > i:
            tokens.append(_class(text[i + 1 : end]))
            i = end
        else:
            tokens.append(CharClass(frozenset(ch)))
        i += 1
    return tuple(tokens)


@lru_cache(maxsize=4096)
def parse(glob: str) -> tuple[Segment | str, ...]:
    """A glob into segments; a segment is a token tuple or GLOBSTAR. Leading `./` and doubled `/` are ignored."""
    parts = [p for p in glob.strip().split("/") if p not in ("", ".")]
    out: list[Segment | str] = []
    for part in parts:
        if part == GLOBSTAR:
            if not out or out[-1] != GLOBSTAR:
                out.append(GLOBSTAR)
        else:
            out.append(parse_segment(part))
    return tuple(out)


def _steps(tokens: Segment, i: int) -> list[tuple[CharClass, int]]:
    """Character-consuming moves from position i: (class consumed, next position)."""
    if i >= len(tokens):
        return []
    tok = tokens[i]
    return [(ANY, i)] if tok == STAR else [(tok, i + 1)]  # type: ignore[list-item]


def _closure(tokens: Segment, i: int) -> list[int]:
    """Positions reachable without consuming: a star may match nothing."""
    out = [i]
    while i < len(tokens) and tokens[i] == STAR:
        i += 1
        out.append(i)
    return out


@lru_cache(maxsize=65536)
def segments_overlap(a: Segment, b: Segment) -> bool:
    """True when some non-empty string without `/` matches both segments."""
    start = [(i, j) for i in _closure(a, 0) for j in _closure(b, 0)]
    seen = set(start)
    queue = deque(start)
    while queue:
        i, j = queue.popleft()
        if i == len(a) and j == len(b):
            return True
        for ca, ni in _steps(a, i):
            for cb, nj in _steps(b, j):
                if not ca.meets(cb):
                    continue
                for pi in _closure(a, ni):
                    for pj in _closure(b, nj):
                        if (pi, pj) not in seen:
                            seen.add((pi, pj))
                            queue.append((pi, pj))
    return False


def _path_overlap(a: tuple[Segment | str, ...], b: tuple[Segment | str, ...]) -> bool:
    def close(segs: tuple[Segment | str, ...], i: int) -> list[int]:
        out = [i]
        while i < len(segs) and segs[i] == GLOBSTAR:
            i += 1
            out.append(i)
        return out

    start = [(i, j) for i in close(a, 0) for j in close(b, 0)]
    seen = set(start)
    queue = deque(start)
    while queue:
        i, j = queue.popleft()
        if i == len(a) and j == len(b):
            return True
        if i == len(a) or j == len(b):
            continue
        sa, sb = a[i], b[j]
        # one concrete segment consumed on both sides; a globstar stays put, a segment pattern advances
        if sa != GLOBSTAR and sb != GLOBSTAR and not segments_overlap(sa, sb):
            continue
        ni = i if sa == GLOBSTAR else i + 1
        nj = j if sb == GLOBSTAR else j + 1
        for pi in close(a, ni):
            for pj in close(b, nj):
                if (pi, pj) not in seen:
                    seen.add((pi, pj))
                    queue.append((pi, pj))
    return False


@lru_cache(maxsize=65536)
def overlaps(a: str, b: str) -> bool:
    """True when some relative path matches both globs (placeholders count as `*`)."""
    return any(_path_overlap(parse(x), parse(y)) for x in expand_braces(a) for y in expand_braces(b))


def _segment_regex(seg: Segment) -> str:
    out = []
    for tok in seg:
        if tok == STAR:
            out.append("[^/]*")
        else:
            assert isinstance(tok, CharClass)
            body = "".join(re.escape(c) for c in sorted(tok.chars))
            if tok.negated:
                out.append(f"[^/{body}]")
            elif len(tok.chars) == 1:
                out.append(body)
            else:
                out.append(f"[{body}]")
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_glob(glob: str) -> re.Pattern[str]:
    """A regex that matches concrete paths, for the per-run hot path (cheaper than the product search)."""
    alts = []
    for g in expand_braces(glob):
        segs = parse(g)
        parts: list[str] = []
        for k, seg in enumerate(segs):
            if seg == GLOBSTAR:
                parts.append("(?:[^/]+/)*[^/]+" if k == len(segs) - 1 else "(?:[^/]+/)*")
            else:
                parts.append(_segment_regex(seg) + ("" if k == len(segs) - 1 else "/"))  # type: ignore[arg-type]
        alts.append("".join(parts))
    return re.compile("^(?:" + "|".join(f"(?:{a})" for a in alts) + ")$")


def matches(glob: str, path: str) -> bool:
    """True when the concrete vault-relative `path` matches `glob`."""
    return compile_glob(glob).match(path.removeprefix("./")) is not None


def to_pathlib(glob: str) -> list[str]:
    """Globs `pathlib.Path.glob` understands: braces expanded, placeholders as `*`."""
    return [re.sub(r"\{[A-Za-z_][A-Za-z0-9_]*\}", "*", g) for g in expand_braces(glob)]
