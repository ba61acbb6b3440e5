"""Every place a collector caps how much of its input it passes on, whatever the tool: `head -N`, `head -n N`,
`head -c N`, `tail -N`/`-n N`/`-c N`, `sed -n '1,Np'`, `sed Nq`, `sed 'N,$d'`, `awk 'NR<=N'`, a Python slice
`[:N]` / `[-N:]`, `islice(f, N)`, `.head(N)`, a `${VAR:-N}` default, or a number on the task's `collect:` line.

Each `Limit` knows the span of its number in the text, so a fix rewrites exactly that literal and nothing else,
and `set_limit` writes the new count in the tool's own terms (`sed 'N,$d'` keeps N-1 lines). `unreaders` are
the `cat` calls that pass whole files with no cap at all. Pure text work.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from handlers.shell_syntax import Command, Script, Word, parse

HEAD, TAIL = "head", "tail"


@dataclass(frozen=True)
class Limit:
    end: str  # head: keeps the first n; tail: keeps the last n
    unit: str  # lines | bytes | items (a Python slice: lines or characters, whatever it slices)
    n: int  # how many it keeps
    start: int  # span of the number literal in the text
    stop: int
    offset: int = 0  # literal = n + offset (`sed 'N,$d'` keeps N-1: offset 1)
    shape: str = ""  # how it is written, for a person: "head -n 10", "python [:8]"
    command: Command | None = None  # the shell command holding it (None: Python, a default, the collect line)

    @property
    def literal(self) -> int:
        return self.n + self.offset


def set_limit(text: str, limit: Limit, n: int) -> str:
    """The text with `limit` keeping `n` instead."""
    return text[:limit.start] + str(max(1, n) + limit.offset) + text[limit.stop:]


# ---- shell ------------------------------------------------------------------------------------------------

_NUM = re.compile(r"\d+")


def _num_in(word: Word, pattern: str) -> tuple[int, int, int] | None:
    """(value, start, stop) of the number the regex group `n` finds in a word's raw text."""
    m = re.fullmatch(pattern, word.raw)
    if m is None:
        return None
    return int(m.group("n")), word.start + m.start("n"), word.start + m.end("n")


def _head_tail(c: Command) -> Limit | None:
    """`head`/`tail` with -N, -n N, -nN, --lines=N, -c N, -cN, --bytes=N (a `tail -n +K` skips, it keeps all)."""
    end = HEAD if c.name == "head" else TAIL
    args = c.args
    for i, w in enumerate(args):
        q = r"['\"]?"
        got = _num_in(w, rf"{q}-(?P<n>\d+){q}")
        unit = "lines"
        if got is None:
            got = _num_in(w, rf"{q}(?:-n|--lines=){q}-?(?P<n>\d+){q}")
        if got is None:
            got = _num_in(w, rf"{q}(?:-c|--bytes=){q}-?(?P<n>\d+){q}")
            unit = "bytes"
        if got is None and w.value in ("-n", "-c", "--lines", "--bytes") and i + 1 < len(args):
            nxt = args[i + 1]
            got = _num_in(nxt, rf"{q}-?(?P<n>\d+){q}")
            unit = "bytes" if w.value in ("-c", "--bytes") else "lines"
        if got is not None:
            n, start, stop = got
            return Limit(end, unit, n, start, stop, shape=f"{c.name} {'-c ' if unit == 'bytes' else '-n '}{n}",
                         command=c)
    return None


def _program(c: Command) -> Word | None:
    """The script argument of sed/awk (the first non-option word; `-e PROG` for sed)."""
    args = list(c.args)
    i = 0
    while i < len(args):
        v = args[i].value
        if v in ("-e", "--expression") and i + 1 < len(args):
            return args[i + 1]
        if v in ("-f", "--file"):
            return None
        if v in ("-F", "-v") or (c.name == "sed" and v in ("-l",)):
            i += 2
            continue
        if v.startswith("-") and v != "-":
            i += 1
            continue
        return args[i]
    return None


def _sed(c: Command) -> Limit | None:
    prog = _program(c)
    if prog is None or prog.dynamic:
        return None
    quiet = any(a.value in ("-n", "--quiet", "--silent") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a.value)
                for a in c.args if a is not prog)
    body = prog.value.strip()
    base = prog.start + prog.raw.index(prog.value[:1]) if prog.value else prog.start
    lead = len(prog.value) - len(prog.value.lstrip())

    def span(m: re.Match[str]) -> tuple[int, int]:
        return base + lead + m.start("n"), base + lead + m.end("n")

    if quiet and (m := re.fullmatch(r"1\s*,\s*(?P<n>\d+)\s*p", body)):
        return Limit(HEAD, "lines", int(m.group("n")), *span(m), shape=f"sed -n '1,{m.group('n')}p'", command=c)
    if not quiet and (m := re.fullmatch(r"(?P<n>\d+)\s*q", body)):
        return Limit(HEAD, "lines", int(m.group("n")), *span(m), shape=f"sed {m.group('n')}q", command=c)
    if not quiet and (m := re.fullmatch(r"(?P<n>\d+)\s*,\s*\$\s*d", body)):
        n = int(m.group("n"))
        return Limit(HEAD, "lines", n - 1, *span(m), offset=1, shape=f"sed '{n},$d'", command=c)
    return None


AWK_NR = re.compile(r"^\s*F?NR\s*(?P<op><=|<)\s*(?P<n>\d+)\s*(?:\{\s*print;?\s*\})?\s*$")
AWK_EXIT = re.compile(r"F?NR\s*(?P<op>>|==)\s*(?P<n>\d+)\s*\{\s*exit;?\s*\}")


def _awk(c: Command) -> Limit | None:
    prog = _program(c)
    if prog is None or prog.dynamic or prog.raw[:1] not in "'\"":
        return None
    base = prog.start + 1
    if m := AWK_NR.match(prog.value):
        n = int(m.group("n")) - (1 if m.group("op") == "<" else 0)
        return Limit(HEAD, "lines", n, base + m.start("n"), base + m.end("n"),
                     offset=1 if m.group("op") == "<" else 0, shape=f"awk 'NR{m.group('op')}{m.group('n')}'", command=c)
    if m := AWK_EXIT.search(prog.value):
        n = int(m.group("n")) - (1 if m.group("op") == "==" else 0)
        return Limit(HEAD, "lines", n, base + m.start("n"), base + m.end("n"),
                     offset=1 if m.group("op") == "==" else 0, shape=f"awk 'NR{m.group('op')}{m.group('n')}{{exit}}'",
                     command=c)
    return None


def shell_limits(script: Script) -> list[Limit]:
    out: list[Limit] = []
    for c in script.commands:
        found = (_head_tail(c) if c.name in ("head", "tail") else _sed(c) if c.name == "sed"
                 else _awk(c) if c.name in ("awk", "gawk", "mawk") else None)
        if found is not None:
            out.append(found)
    return out


def unreaders(script: Script) -> list[Command]:
    """`cat` calls with at least one file argument: whole files, no cap."""
    return [c for c in script.named("cat") if any(not a.value.startswith("-") for a in c.args)]


def pipeline_of(script: Script, command: Command) -> list[Command]:
    return script.pipeline_of(command)


# ---- Python, shell defaults, the collect line ----------------------------------------------------------

PY_HEAD = re.compile(r"\[\s*(?:0\s*)?:\s*(?P<n>\d+)\s*\]")
PY_TAIL = re.compile(r"\[\s*-\s*(?P<n>\d+)\s*:\s*\]")
PY_CALL = re.compile(r"\b(?P<f>islice\([^,()]+,\s*|\.head\(\s*|\.tail\(\s*|\.readlines\(\s*\)\s*\[\s*:\s*)(?P<n>\d+)")
SHELL_DEFAULT = re.compile(r"\$\{[A-Za-z_]\w*:?-(?P<n>\d+)\}")


def python_limits(text: str) -> list[Limit]:
    out: list[Limit] = []
    for pattern, end in ((PY_HEAD, HEAD), (PY_TAIL, TAIL)):
        for m in pattern.finditer(text):
            out.append(Limit(end, "items", int(m.group("n")), m.start("n"), m.end("n"),
                             shape=f"python {m.group(0).replace(' ', '')}"))
    for m in PY_CALL.finditer(text):
        end = TAIL if ".tail" in m.group("f") else HEAD
        if "readlines" not in m.group("f"):
            out.append(Limit(end, "items", int(m.group("n")), m.start("n"), m.end("n"),
                             shape=f"python {m.group('f').strip()}{m.group('n')}"))
    return sorted(out, key=lambda limit: limit.start)


def default_limits(text: str) -> list[Limit]:
    """`${LIMIT:-8}`: a default a script reads from its environment or arguments."""
    return [Limit(HEAD, "items", int(m.group("n")), m.start("n"), m.end("n"), shape=m.group(0))
            for m in SHELL_DEFAULT.finditer(text)]


def collect_line_limits(collect: str) -> list[Limit]:
    """Numbers on the task's `collect:` line after the script (`scripts/x.sh --limit 8`, `scripts/x.py 8`)."""
    try:
        words = shlex.split(collect)
    except ValueError:
        return []
    out = []
    pos = len(words[0]) if words else 0
    for w in words[1:]:
        at = collect.find(w, pos)
        pos = at + len(w)
        m = re.fullmatch(r"(?:--?[A-Za-z][\w-]*=)?(?P<n>\d+)", w)
        if m and at >= 0:
            out.append(Limit(HEAD, "items", int(m.group("n")), at + m.start("n"), at + m.end("n"),
                             shape=f"collect: … {w}"))
    return out


def script_limits(text: str, *, python: bool) -> list[Limit]:
    """Every limit in a collector's text (shell commands, inline or whole-file Python, `${X:-N}` defaults)."""
    if python:
        return python_limits(text)
    script = parse(text)
    inline = [lim for lim in python_limits(text) if _in_heredoc(script, text, lim.start)]
    return sorted([*shell_limits(script), *default_limits(text), *inline], key=lambda lim: lim.start)


def _in_heredoc(script: Script, text: str, offset: int) -> bool:
    """An offset no parsed command covers, after a `<<` redirection: inside a here-document (inline Python)."""
    if any(c.start <= offset < c.end for c in script.commands):
        return False
    return any(op.lstrip("0123456789&").startswith("<<") and target.end <= offset
               for c in script.commands for op, target in c.redirects)


__all__ = ["HEAD", "TAIL", "Limit", "collect_line_limits", "default_limits", "pipeline_of", "python_limits",
           "script_limits", "set_limit", "shell_limits", "unreaders"]
