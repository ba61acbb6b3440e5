"""Fewer programs per loop item: the per-item `$(...)` reads of a loop's file become a single awk pass,
`$(basename …)`/`$(dirname …)` and `$(echo "$line" | cut -dC -fN)` become parameter expansions (no program at
all), and a `$(date …)` that reads nothing the loop sets is computed once before the loop.

What is translated, whatever the field or the tool, as long as the only variable it reads is the loop's file:
    sed -n 's/RE/REPL/[g]p' F · sed -n '/RE/p' F · sed -n 'Np' F · grep [-E|-F] [-m N] RE F · grep -c RE F
    head -n N F · cat F · wc -l|-w < F (or F)
each optionally followed by `| cut -dC -fN[-]`, `| sed 's/RE/REPL/[g]'`, `| tr -d 'chars'`, `| head -n N`,
`| tail -n 1`, `| awk '{print $N}'`. Anything else (back-references, other variables, unknown tools) is left as
it is. The awk pass prints `name='value'` lines for `eval`, quoted for POSIX sh and bash alike. It reads the whole
file, as the programs it replaces did (stopping at the front matter's end would miss a `TODO:` in the body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from handlers.shell_syntax import Command, Loop, Script, Substitution, parse


@dataclass
class _Read:
    """One translated `$(...)`: awk rules filling `val[key]` (or a counter), and the value at END."""

    key: str
    rules: list[str] = field(default_factory=list)
    end: str = ""


def bre_to_ere(pattern: str) -> str:
    """A POSIX basic regular expression as an extended one (what awk reads)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            out.append(n if n in "(){}|+?" else "\\" + n)
            i += 2
            continue
        out.append("\\" + c if c in "(){}|+?" else c)
        i += 1
    return "".join(out)


def _awk_regex(ere: str) -> str:
    return re.sub(r"(?<!\\)/", r"\\/", ere)


def _awk_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sed_subst(program: str) -> tuple[str, str, bool, bool] | None:
    """`s/RE/REPL/FLAGS` → (ERE, replacement, global, print); None for what awk's sub cannot do."""
    if len(program) < 4 or program[0] != "s":
        return None
    d = program[1]
    parts = re.split(rf"(?<!\\){re.escape(d)}", program[2:])
    if len(parts) != 3:
        return None
    regex, repl, flags = parts
    if "\\" in repl.replace("\\&", "") or set(flags) - set("gp"):
        return None  # back-references and other flags stay with sed
    return _awk_regex(bre_to_ere(regex)), repl, "g" in flags, "p" in flags


def _uses(words: tuple[Command, ...], var: str) -> bool:
    return any(w.value in (f"${var}", f"${{{var}}}") for c in words for w in (*c.words, *(r for _, r in c.redirects)))


def _file_only(c: Command, var: str) -> list[str] | None:
    """The command's non-file arguments when it reads `$var` (as an argument or `< "$var"`) and nothing else
    variable; None otherwise."""
    refs = (f"${var}", f"${{{var}}}")
    args = [w for w in c.args if w.value not in refs]
    reads = len(c.args) - len(args) + sum(1 for op, r in c.redirects if op == "<" and r.value in refs)
    if reads != 1 or any(w.dynamic for w in args) or any(r.value not in refs for _, r in c.redirects):
        return None
    return [w.value for w in args]


def _first(c: Command, var: str, key: str) -> _Read | None:
    args = _file_only(c, var)
    if args is None:
        return None
    r = _Read(key)
    if c.name == "sed" and args[:1] == ["-n"] and len(args) == 2:
        prog = args[1].strip()
        sub = _sed_subst(prog)
        if sub is not None and sub[3]:
            regex, repl, glob, _ = sub
            r.rules.append(f'{{ s = $0; if ({"gsub" if glob else "sub"}(/{regex}/, {_awk_string(repl)}, s)) {{ FILTERS }} }}')
            return r
        if m := re.fullmatch(r"/(.+)/\s*p", prog):
            regex = _awk_regex(bre_to_ere(m.group(1)))
            r.rules.append(f"/{regex}/ {{ s = $0; FILTERS }}")
            return r
        if m := re.fullmatch(r"(\d+)\s*p", prog):
            r.rules.append(f"NR == {m.group(1)} {{ s = $0; FILTERS }}")
            return r
        return None
    if c.name == "grep":
        return _grep(args, r)
    if c.name == "head" and (n := _count(args)) is not None:
        r.rules.append(f"NR <= {n} {{ s = $0; FILTERS }}")
        return r
    if c.name == "cat" and not args:
        r.rules.append("{ s = $0; FILTERS }")
        return r
    if c.name == "wc" and args in (["-l"], ["-w"]):
        named = any(w.value.startswith("$") for w in c.args)
        total = "NR" if args == ["-l"] else f"words[{_awk_string(key)}] + 0"
        if args == ["-w"]:
            r.rules.append(f"{{ words[{_awk_string(key)}] += NF }}")
        r.end = f'{total} " " FILENAME' if named else total
        return r
    return None


def _grep(args: list[str], r: _Read) -> _Read | None:
    opts, pattern, limit, count, fixed, extended = [], None, None, False, False, False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-m", "--max-count") and i + 1 < len(args) and args[i + 1].isdigit():
            limit, i = int(args[i + 1]), i + 2
            continue
        if re.fullmatch(r"-m\d+", a):
            limit = int(a[2:])
        elif a == "-c":
            count = True
        elif a == "-F":
            fixed = True
        elif a == "-E":
            extended = True
        elif a == "-e" and i + 1 < len(args):
            pattern, i = args[i + 1], i + 2
            continue
        elif a.startswith("-"):
            opts.append(a)
        elif pattern is None:
            pattern = a
        else:
            return None
        i += 1
    if pattern is None or opts:
        return None
    cond = (f"index($0, {_awk_string(pattern)})" if fixed else
            f"/{_awk_regex(pattern if extended else bre_to_ere(pattern))}/")
    if count:
        r.rules.append(f"{cond} {{ n[{_awk_string(r.key)}]++ }}")
        r.end = f"n[{_awk_string(r.key)}] + 0"
        return r
    if limit is not None:
        cond += f" && hits[{_awk_string(r.key)}]++ < {limit}"
    r.rules.append(f"{cond} {{ s = $0; FILTERS }}")
    return r


def _count(args: list[str]) -> int | None:
    if len(args) == 1 and re.fullmatch(r"-\d+", args[0]):
        return int(args[0][1:])
    if len(args) == 2 and args[0] == "-n" and args[1].isdigit():
        return int(args[1])
    if len(args) == 1 and re.fullmatch(r"-n\d+", args[0]):
        return int(args[0][2:])
    return None


def _filter(c: Command, key: str) -> str | None:
    """An awk statement doing to one value line what a later command of the pipeline does; None if unknown."""
    args = [w.value for w in c.args]
    if any(w.dynamic for w in c.args) or c.redirects:
        return None
    k = _awk_string(key)
    if c.name == "cut":
        d = next((a[2:] or "" for a in args if a.startswith("-d")), "\t")
        if "-d" in args:
            d = args[args.index("-d") + 1]
        f = next((a[2:] for a in args if a.startswith("-f") and len(a) > 2), None)
        if "-f" in args:
            f = args[args.index("-f") + 1]
        if f is None or len(d) != 1 or not (m := re.fullmatch(r"(\d+)(-?)", f)):
            return None
        sep = '"[ ]"' if d == " " else _awk_string(d)
        if not m.group(2):
            return f"split(s, part, {sep}); s = part[{m.group(1)}]"
        return (f"cnt = split(s, part, {sep}); t = \"\"; for (j = {m.group(1)}; j <= cnt; j++) "
                f"t = t (j > {m.group(1)} ? {_awk_string(d)} : \"\") part[j]; s = t")
    if c.name == "sed" and len(args) == 1 and (sub := _sed_subst(args[0])) is not None and not sub[3]:
        regex, repl, glob, _ = sub
        return f'{"gsub" if glob else "sub"}(/{regex}/, {_awk_string(repl)}, s)'
    if c.name == "tr" and len(args) == 2 and args[0] == "-d" and re.fullmatch(r"[ \t\"'\w.,:;]+", args[1]):
        chars = re.sub(r"([\]\\^-])", r"\\\1", args[1]).replace("\t", "\\t")
        return f"gsub(/[{chars}]/, \"\", s)"
    if c.name == "head" and (n := _count(args)) is not None:
        return f"if (taken[{k}]++ >= {n}) next"
    if c.name == "tail" and _count(args) == 1:
        return f"delete val[{k}]"
    if c.name == "awk" and len(args) == 1 and (m := re.fullmatch(r"\{\s*print \$(\d+);?\s*\}", args[0].strip())):
        return f"split(s, part); s = part[{m.group(1)}]"
    return None


def translate(sub: Substitution, var: str, key: str) -> _Read | None:
    """The awk form of one `$(...)` reading the loop's file, or None."""
    cmds = [c for c in sub.commands if c.depth == sub.commands[0].depth]
    if not cmds or len({c.pipeline for c in cmds}) != 1 or len(cmds) != len(sub.commands):
        return None
    first = _first(cmds[0], var, key)
    if first is None or any(_uses((c,), var) for c in cmds[1:]):
        return None
    if first.end:  # a count: only space-trimming may follow it
        return first if all(c.name == "tr" and [w.value for w in c.args] == ["-d", " "] for c in cmds[1:]) else None
    filters = [_filter(c, key) for c in cmds[1:]]
    if any(f is None for f in filters):
        return None
    body = "; ".join([*(f for f in filters if f), f"add({_awk_string(key)}, s)"])
    first.rules = [rule.replace("FILTERS", body) for rule in first.rules]
    first.end = f"val[{_awk_string(key)}]"
    return first


def _expansion(sub: Substitution, var: str) -> str | None:
    """`$(basename "$f" .md)` / `$(dirname "$f")` as shell parameter expansions; None otherwise."""
    if len(sub.commands) != 1:
        return None
    c = sub.commands[0]
    args = [w.value for w in c.args]
    if c.redirects or not args or args[0] not in (f"${var}", f"${{{var}}}") or any(w.dynamic for w in c.args[1:]):
        return None
    if c.name == "basename" and len(args) in (1, 2):
        suffix = args[1] if len(args) == 2 else ""
        if suffix and not re.fullmatch(r"[\w.-]+", suffix):
            return None
        return f"${{{var}##*/}}" + (f"|{suffix}" if suffix else "")
    if c.name == "dirname" and len(args) == 1:
        return f"${{{var}%/*}}"
    return None


def merge_loop_reads(text: str) -> str | None:
    """Every loop of the script where merging saves programs per item: rewritten; None if none."""
    script = parse(text)
    edits: list[tuple[int, int, str]] = []
    for loop in script.loops:
        edits += _loop_edits(script, loop)
    if not edits:
        return None
    for start, end, new in sorted(edits, key=lambda e: -e[0]):
        text = text[:start] + new + text[end:]
    return text


def _loop_edits(script: Script, loop: Loop) -> list[tuple[int, int, str]]:
    var = loop.var
    if not var:
        return []
    inner = [s for s in script.substitutions if loop.body_start <= s.start and s.end <= loop.body_end
             and not any(o is not s and o.start < s.start and s.end <= o.end for o in script.substitutions)]
    changing = _assigned_in(script, loop)
    reads: list[tuple[Substitution, _Read]] = []
    expands: list[tuple[Substitution, str]] = []
    fields: list[tuple[Substitution, str, int]] = []
    hoisted: list[Substitution] = []
    for n, sub in enumerate(inner):
        target = _assigned(script, sub)
        key = target or f"_{var}_{n}"
        if (exp := _expansion(sub, var)) is not None:
            expands.append((sub, exp))
        elif (cut := _field(sub, var)) is not None:
            fields.append((sub, *cut))
        elif _invariant(sub, changing):
            hoisted.append(sub)
        elif (read := translate(sub, var, key)) is not None:
            reads.append((sub, read))
    hoisted = hoisted if _can_insert_before(script.text, loop.start) else []
    saved = (len(expands) + sum(len(sub.commands) for sub, _, _ in fields) + len(hoisted)
             + sum(len(sub.commands) for sub, _ in reads) - (1 if reads else 0))
    if saved < 1:
        return []
    text = script.text
    indent = _indent_at(text, loop.body_start)
    head: list[str] = []
    if reads:
        head += _awk_block([r for _, r in reads], var, indent)
    edits: list[tuple[int, int, str]] = []
    for n, (sub, exp) in enumerate(expands):
        target = _assigned(script, sub) or f"_{var}_name{n}"
        value, _, suffix = exp.partition("|")
        head.append(f"{indent}{target}={value}" + (f"; {target}=${{{target}%{suffix}}}" if suffix else ""))
        edits.append(_replacement(script, sub, target))
    for delim in dict.fromkeys(d for _, d, _ in fields):
        wanted = max(n for _, d, n in fields if d == delim)
        head.append(indent + _split_fields(var, delim, wanted))
        edits += [(sub.start, sub.end, f"${{{_field_name(var, d, n)}}}") for sub, d, n in fields if d == delim]
    edits += [_replacement(script, sub, read.key) for sub, read in reads]
    at = text.find("\n", loop.body_start)
    at = loop.body_start if at < 0 or at > loop.body_end else at + 1
    if head:
        edits.append((at, at, "\n".join(head) + "\n"))
    if hoisted:
        line = text.rfind("\n", 0, loop.start) + 1
        outer = re.match(r"[ \t]*", text[line:]).group(0)  # type: ignore[union-attr]
        names = [f"_{var}_same{n}" for n in range(len(hoisted))]
        before = "".join(f"{outer}{name}={text[sub.start:sub.end]}  # the same for every item\n"
                         for name, sub in zip(names, hoisted, strict=True))
        edits.append((line, line, before))
        edits += [(sub.start, sub.end, f"${{{name}}}") for name, sub in zip(names, hoisted, strict=True)]
    return edits


def _assigned_in(script: Script, loop: Loop) -> set[str]:
    """Variables the loop sets: its own, `read`'s, assignments and nested loop variables inside it."""
    names = {loop.var}
    for c in script.commands:
        if loop.start <= c.start < loop.end:
            names |= {a.raw.split("=", 1)[0].rstrip("+") for a in c.assignments}
            if c.name == "read":
                names |= {w.value for w in c.args if re.fullmatch(r"[A-Za-z_]\w*", w.value)}
    names |= {inner.var for inner in script.loops if loop.start < inner.start < loop.end}
    return names


def _invariant(sub: Substitution, changing: set[str]) -> bool:
    """A `$(date …)` that reads no variable the loop sets: the same value every item (computed once instead)."""
    if len(sub.commands) != 1 or sub.commands[0].name != "date" or sub.commands[0].redirects:
        return False
    used = {m for w in sub.commands[0].args for m in re.findall(r"\$\{?([A-Za-z_]\w*)", w.raw)}
    return not used & changing and not any("$(" in w.raw or "`" in w.raw for w in sub.commands[0].args)


def _can_insert_before(text: str, offset: int) -> bool:
    """A new line may go before the line holding `offset` (that line does not continue the previous one)."""
    line = text.rfind("\n", 0, offset)
    previous = text[:max(line, 0)].rstrip()
    return not previous.endswith(("|", "\\", "&&", "||"))


def _field(sub: Substitution, var: str) -> tuple[str, int] | None:
    """`$(echo "$line" | cut -d, -f2)` (or printf '%s\\n') → (",", 2)."""
    if len(sub.commands) != 2 or any(c.redirects for c in sub.commands):
        return None
    src, cut = sub.commands
    args = [w.value for w in src.args]
    if not ((src.name == "echo" and args == [f"${var}"]) or
            (src.name == "printf" and args in (["%s\\n", f"${var}"], ["%s\n", f"${var}"]))):
        return None
    if cut.name != "cut" or any(w.dynamic for w in cut.args):
        return None
    opts = " ".join(w.value for w in cut.args)
    m = re.fullmatch(r"-d\s?(?P<d>\S)\s+-f\s?(?P<f>\d+)|-f\s?(?P<f2>\d+)\s+-d\s?(?P<d2>\S)", opts)
    if m is None:
        return None
    return m.group("d") or m.group("d2"), int(m.group("f") or m.group("f2"))


def _field_name(var: str, delim: str, n: int) -> str:
    return f"_{var}_{ord(delim)}_{n}"


def _split_fields(var: str, delim: str, wanted: int) -> str:
    """Fields 1..wanted of $var split on `delim` as `cut` splits them, by parameter expansion (no program): a line
    without the delimiter is every field, as `cut` prints it."""
    d = '"' + delim.replace('"', '\\"') + '"'
    rest = f"_{var}_rest"
    parts = []
    for n in range(1, wanted + 1):
        parts.append(f"{_field_name(var, delim, n)}=${{{rest}%%{d}*}}")
        if n < wanted:
            parts.append(f"{rest}=${{{rest}#*{d}}}")
    whole = "; ".join(f"{_field_name(var, delim, n)}=${var}" for n in range(1, wanted + 1))
    return f"case ${var} in *{d}*) {rest}=${var}{d}; {'; '.join(parts)};; *) {whole};; esac"


def _assigned(script: Script, sub: Substitution) -> str | None:
    """The variable when the substitution is the whole value of a lone `name=$(...)` command."""
    for c in script.commands:
        if not c.words and not c.redirects and len(c.assignments) == 1:
            a = c.assignments[0]
            name, eq, _ = a.raw.partition("=")
            if eq and a.start + len(name) + 1 == sub.start and a.end == sub.end and re.fullmatch(r"[A-Za-z_]\w*", name):
                return name
    return None


def _replacement(script: Script, sub: Substitution, key: str) -> tuple[int, int, str]:
    """A lone `name=$(...)` line goes (its value is set before); an inline `$(...)` becomes `${key}`."""
    text = script.text
    if _assigned(script, sub) == key:
        start = text.rfind("\n", 0, sub.start) + 1
        end = text.find("\n", sub.end)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip() == text[start + len(line) - len(line.lstrip()):sub.end].strip():
            return start, min(end + 1, len(text)), ""
        a = start + len(line) - len(line.lstrip())
        return a, sub.end, f"{key}=${{{key}}}"
    return sub.start, sub.end, f"${{{key}}}"


def _indent_at(text: str, offset: int) -> str:
    nl = text.find("\n", offset)
    line = text[nl + 1:text.find("\n", nl + 1)] if nl >= 0 else ""
    return re.match(r"[ \t]*", line).group(0) or "  "  # type: ignore[union-attr]


def _awk_block(reads: list[_Read], var: str, indent: str) -> list[str]:
    out = [f"{indent}# one awk pass per item: every value read at once (was one program per value)",
           f"{indent}eval \"$(awk '",
           f"{indent}  function esc(s) {{ gsub(q, q \"\\\\\" q q, s); return s }}",
           f"{indent}  function add(k, s) {{ val[k] = (k in val) ? val[k] \"\\n\" s : s }}",
           f'{indent}  BEGIN {{ q = sprintf("%c", 39) }}']
    out += [f"{indent}  {rule}" for r in reads for rule in r.rules]
    prints = " ".join(f'print "{r.key}=" q esc({r.end}) q;' for r in reads)
    out += [f"{indent}  END {{ {prints} }}", f"{indent}' \"${var}\")\""]
    return out


__all__ = ["bre_to_ere", "merge_loop_reads", "translate"]
