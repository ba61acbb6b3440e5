"""Just enough of POSIX sh / bash syntax to find commands in a collector script and edit one in place.

`parse(script)` returns every simple command (nested `$( )` ones too) with the exact character span of its
words, its redirections, the pipeline it belongs to, the command substitutions it holds, and every
`for`/`while` loop with its variable and body span. Words keep their raw text (quotes and all), so an edit can
reuse an argument as written (`"$note"`), and a dequoted value for matching. Here-document bodies, `case`
patterns, `[[ ]]` comparisons and arithmetic are skipped, not parsed. Pure text work: nothing runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = frozenset({"if", "then", "elif", "else", "fi", "for", "while", "until", "do", "done", "case", "esac",
                      "in", "!", "{", "}", "time", "function", "select"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
REDIRECT = re.compile(r"(\d*|&)(>>|>\||>&|<&|<<<|<<-|<<|<>|>|<)")


@dataclass(frozen=True)
class Word:
    raw: str  # as written
    value: str  # quotes removed; expansions ($x, $(..)) kept as written
    start: int
    end: int
    dynamic: bool  # holds an unquoted or double-quoted expansion, or an unquoted glob


@dataclass(frozen=True)
class Command:
    words: tuple[Word, ...]  # the command's name and arguments (no assignments, no redirections)
    redirects: tuple[tuple[str, Word], ...]
    assignments: tuple[Word, ...]
    start: int
    end: int
    pipeline: int  # commands joined by `|` share this number
    depth: int  # 0 at the top level, 1 inside one `$( )`, ...

    @property
    def name(self) -> str:
        return self.words[0].value if self.words else ""

    @property
    def args(self) -> tuple[Word, ...]:
        return self.words[1:]


@dataclass(frozen=True)
class Substitution:
    start: int  # of `$(`
    end: int  # after `)`
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Loop:
    kind: str  # for | while | until
    var: str  # the loop variable (`for X in`, `while read -r X`); "" when none
    start: int  # of the keyword
    body_start: int  # after `do`
    body_end: int  # before `done`
    end: int  # after `done`


@dataclass
class Script:
    text: str
    commands: list[Command] = field(default_factory=list)
    substitutions: list[Substitution] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)

    def pipeline_of(self, command: Command) -> list[Command]:
        return [c for c in self.commands if c.pipeline == command.pipeline]

    def named(self, *names: str) -> list[Command]:
        return [c for c in self.commands if c.name in names]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.out = Script(text)
        self.pipelines = 0
        self.pending_heredocs: list[tuple[str, bool]] = []
        self.loops: list[tuple[str, int, str]] = []  # open loops: kind, start, var
        self.dos: list[int | None] = []  # body start of each open do (None until `do` is seen)

    # -- words --------------------------------------------------------------------------------------
    def word(self, depth: int) -> Word | None:
        """Read one word at pos (pos on a non-blank, non-operator char)."""
        t, start = self.text, self.pos
        value: list[str] = []
        dynamic = False
        while self.pos < len(t):
            ch = t[self.pos]
            if ch in " \t\n;&|()<>":
                if ch == "(" and self.pos > start and t[self.pos - 1] in "@?*+!=":  # bash extglob like @(a|b)
                    self.skip_balanced("(", ")")
                    value.append(t[start:self.pos])
                    continue
                break
            if ch == "\\":
                value.append(t[self.pos + 1:self.pos + 2])
                self.pos += 2
            elif ch == "'":
                end = t.find("'", self.pos + 1)
                end = len(t) if end < 0 else end
                value.append(t[self.pos + 1:end])
                self.pos = end + 1
            elif ch == '"':
                self.pos += 1
                while self.pos < len(t) and t[self.pos] != '"':
                    c = t[self.pos]
                    if c == "\\":
                        value.append(t[self.pos + 1:self.pos + 2])
                        self.pos += 2
                    elif c == "$" or c == "`":
                        dynamic = True
                        value.append(self.expansion(depth))
                    else:
                        value.append(c)
                        self.pos += 1
                self.pos += 1
            elif ch == "$" or ch == "`":
                dynamic = True
                value.append(self.expansion(depth))
            else:
                dynamic = dynamic or ch in "*?["
                value.append(ch)
                self.pos += 1
        if self.pos == start:
            return None
        return Word(t[start:self.pos], "".join(value), start, self.pos, dynamic)

    def expansion(self, depth: int) -> str:
        """`$x`, `${..}`, `$((..))`, `$(..)` or a backquote at pos; returns its raw text, records substitutions."""
        t, start = self.text, self.pos
        if t.startswith("$((", start):
            self.arithmetic(depth)
        elif t.startswith("$(", start):
            self.pos += 2
            first = len(self.out.commands)
            self.sequence(depth + 1, closer=")")
            self.pos += 1  # the closing paren
            self.out.substitutions.append(Substitution(start, self.pos, tuple(self.out.commands[first:])))
        elif t.startswith("${", start):
            self.pos += 1
            self.skip_balanced("{", "}")
        elif t[start] == "`":
            end = t.find("`", start + 1)
            self.pos = len(t) if end < 0 else end + 1
        else:
            m = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])?").match(t, start)
            self.pos = m.end() if m else start + 1
        return t[start:self.pos]

    def arithmetic(self, depth: int) -> None:
        """`$(( … ))` at pos: skipped to its end, its command substitutions recorded."""
        t, level = self.text, 0
        self.pos += 1  # on the first "("
        while self.pos < len(t):
            if t.startswith("$(", self.pos) and not t.startswith("$((", self.pos):
                self.expansion(depth)
                continue
            ch = t[self.pos]
            level += (ch == "(") - (ch == ")")
            self.pos += 1
            if level == 0:
                return

    def skip_balanced(self, open_: str, close: str) -> None:
        """From an opening char at pos to after its match (quotes respected)."""
        t, level = self.text, 0
        while self.pos < len(t):
            ch = t[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "'":
                end = t.find("'", self.pos + 1)
                self.pos = len(t) if end < 0 else end + 1
                continue
            if ch == open_:
                level += 1
            elif ch == close:
                level -= 1
                if level == 0:
                    self.pos += 1
                    return
            self.pos += 1

    # -- commands -----------------------------------------------------------------------------------
    def blanks(self) -> None:
        t = self.text
        while self.pos < len(t):
            ch = t[self.pos]
            if ch in " \t":
                self.pos += 1
            elif ch == "\\" and t.startswith("\\\n", self.pos):
                self.pos += 2
            elif ch == "#":
                end = t.find("\n", self.pos)
                self.pos = len(t) if end < 0 else end
            else:
                return

    def heredoc_bodies(self) -> None:
        """After a newline: skip the bodies of here-documents opened on the line just ended."""
        t = self.text
        for marker, strip in self.pending_heredocs:
            while self.pos < len(t):
                end = t.find("\n", self.pos)
                line = t[self.pos:len(t) if end < 0 else end]
                self.pos = len(t) if end < 0 else end + 1
                if (line.lstrip("\t") if strip else line) == marker:
                    break
        self.pending_heredocs.clear()

    def sequence(self, depth: int, closer: str | None = None) -> None:
        """Commands until `closer` (a `)` of a substitution) or the end of the text."""
        t = self.text
        new_pipeline = True
        in_case = 0
        while True:
            self.blanks()
            if self.pos >= len(t):
                return
            ch = t[self.pos]
            if closer is not None and ch == closer:
                return
            if ch == "\n":
                self.pos += 1
                self.heredoc_bodies()
                new_pipeline = True
                continue
            if t.startswith(";;", self.pos):
                self.pos += 2
                new_pipeline = True
                continue
            if ch in ";&" or t.startswith("||", self.pos):
                self.pos += 2 if t.startswith(("&&", "||"), self.pos) else 1
                new_pipeline = True
                continue
            if ch == "|":
                self.pos += 2 if t.startswith("|&", self.pos) else 1
                new_pipeline = False
                continue
            if t.startswith("((", self.pos):
                self.skip_balanced("(", ")")
                continue
            if ch in "()":
                if ch == "(" and in_case == 0:
                    self.pos += 1
                    self.sequence(depth, closer=")")
                    self.pos += 1
                else:
                    self.pos += 1
                new_pipeline = True
                continue
            if new_pipeline:
                self.pipelines += 1
            in_case = self.command(depth, in_case, self.pipelines)
            new_pipeline = False

    def command(self, depth: int, in_case: int, pipeline: int) -> int:
        """One simple command (or a keyword) at pos; returns the updated case-pattern state."""
        t = self.text
        start = self.pos
        words: list[Word] = []
        redirects: list[tuple[str, Word]] = []
        assignments: list[Word] = []
        test_brackets = False
        while True:
            self.blanks()
            if self.pos >= len(t):
                break
            ch = t[self.pos]
            if ch in "\n;&|)" or (ch == "(" and not words):
                if ch == ")" and in_case == 2:  # the end of a case pattern
                    self.pos += 1
                    return 3
                break
            m = REDIRECT.match(t, self.pos)
            if m and not test_brackets and (m.group(1) == "" or t[self.pos].isdigit() or t[self.pos] == "&"):
                op = m.group(0)
                self.pos = m.end()
                self.blanks()
                target = self.word(depth)
                if target is None:
                    continue
                if m.group(2) in ("<<", "<<-"):
                    self.pending_heredocs.append((target.value, m.group(2) == "<<-"))
                redirects.append((op, target))
                continue
            w = self.word(depth)
            if w is None:
                self.pos += 1
                continue
            if not words and in_case != 2 and ASSIGNMENT.match(w.raw):
                assignments.append(w)
                continue
            if not words and w.value in KEYWORDS and not w.dynamic:
                in_case = self.keyword(w, in_case, depth)
                start = self.pos
                if w.value == "in" and in_case == 1:
                    return 2
                continue
            if in_case == 2:  # words of a case pattern
                continue
            words.append(w)
            if w.value == "[[":
                test_brackets = True
            elif w.value == "]]":
                test_brackets = False
        end = max([start, *[w.end for w in words], *[r[1].end for r in redirects], *[a.end for a in assignments]])
        if words or redirects or assignments:
            first = min([*[w.start for w in words], *[r[1].start for r in redirects], *[a.start for a in assignments]])
            self.out.commands.append(Command(tuple(words), tuple(redirects), tuple(assignments), first, end,
                                             pipeline, depth))
            self._note_loop_var(words)
        return 0 if in_case == 3 else in_case

    def keyword(self, w: Word, in_case: int, depth: int) -> int:
        t = self.text
        if w.value in ("for", "select"):
            self.blanks()
            name = self.word(depth)
            self.loops.append(("for", w.start, name.value if name else ""))
            self.dos.append(None)
            while True:  # `in words...` up to the separator before `do` (substitutions in them are recorded)
                self.blanks()
                if self.pos >= len(t) or t[self.pos] in ";\n&|)":
                    break
                if self.word(depth) is None:
                    self.pos += 1
        elif w.value in ("while", "until"):
            self.loops.append((w.value, w.start, ""))
            self.dos.append(None)
        elif w.value == "do":
            if self.dos and self.dos[-1] is None:
                self.dos[-1] = w.end
        elif w.value == "done":
            if self.loops:
                kind, start, var = self.loops.pop()
                body = self.dos.pop()
                self.out.loops.append(Loop(kind, var, start, body if body is not None else w.start, w.start, w.end))
        elif w.value == "case":
            self.blanks()
            self.word(0)
            return 1
        elif w.value == "esac":
            return 0
        return in_case

    def _note_loop_var(self, words: list[Word]) -> None:
        """`while read -r X` names the loop variable of the innermost while loop whose `do` is not seen yet."""
        if not words or words[0].value != "read" or not self.loops:
            return
        kind, start, var = self.loops[-1]
        if kind in ("while", "until") and not var and self.dos and self.dos[-1] is None:
            names = [w.value for w in words[1:] if not w.value.startswith("-") and re.fullmatch(r"[A-Za-z_]\w*", w.value)]
            if names:
                self.loops[-1] = (kind, start, names[0])


def parse(script: str) -> Script:
    p = _Parser(script)
    p.sequence(0)
    p.out.commands.sort(key=lambda c: c.start)
    p.out.loops.sort(key=lambda loop: loop.start)
    return p.out


def program_of(c: Command) -> tuple[Word | None, list[Word]]:
    """(the program or pattern word, the file words) of an awk, sed or grep command (`-e PROG` counts)."""
    args = list(c.args)
    prog: Word | None = None
    files: list[Word] = []
    i = 0
    while i < len(args):
        v = args[i].value
        if prog is None and v in ("-e", "--expression", "--regexp") and i + 1 < len(args):
            prog, i = args[i + 1], i + 2
            continue
        if v in ("-F", "-v", "-f", "-A", "-B", "-C", "-m", "-l") and i + 1 < len(args):
            i += 2
            continue
        if v.startswith("-") and v != "-":
            i += 1
            continue
        if prog is None:
            prog = args[i]
        else:
            files.append(args[i])
        i += 1
    return prog, files


def quote(text: str) -> str:
    """Single-quoted for sh."""
    return "'" + text.replace("'", "'\\''") + "'"


def replace_span(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


__all__ = ["Command", "Loop", "Script", "Substitution", "Word", "line_of", "parse", "program_of", "quote",
           "replace_span"]
