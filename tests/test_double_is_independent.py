"""The flawed-model double is an independent behaviour spec: it shares no text with the proposers, and no sentence a
proposer writes cures a flaw it models — only a change to what the prompt shows does.

A double that recognised the proposers' sentences would make the fault benchmark measure the proposers against
themselves. Two checks keep that from creeping back: a textual one (no string literal or regex source of 12
characters or more passes between `handlers/proposers/*.py` and the double's modules, either way) and a
behavioural one (every sentence the proposers can write, added to a prompt showing a flaw, leaves the flaw).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from testbed.doubles.flawed_models import FlawedModels
from testbed.servers.protocol import Request

REPO = Path(__file__).resolve().parents[1]
DOUBLE = [REPO / "testbed/doubles/flawed_models.py", REPO / "testbed/doubles/prompt_anatomy.py",
          REPO / "testbed/doubles/data_reading.py", REPO / "benchmarks/fault_models.py"]
PROPOSERS = sorted((REPO / "handlers" / "proposers").glob("*.py"))
MIN_CHARS = 12


def literals(source: str) -> set[str]:
    """Every string constant in a module (f-strings' constant parts too), as written, docstrings left out."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


def shared(ours: dict[Path, str], theirs: dict[Path, str]) -> list[str]:
    """Literals of `ours` (12+ characters once whitespace is squeezed) found inside a literal of `theirs`: the
    strings and regex sources each side recognises or writes — docs and names are not behaviour."""
    def squeezed(source: str) -> set[str]:
        return {" ".join(lit.split()) for lit in literals(source)}

    their = {p: squeezed(t) for p, t in theirs.items()}
    found = []
    for path, source in ours.items():
        for flat in squeezed(source):
            if len(flat) >= MIN_CHARS:
                found += [f"{path.name}: {flat!r} in {other.name}" for other, lits in their.items()
                          if any(flat in lit for lit in lits)]
    return found


def sources(paths: list[Path]) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in paths}


def test_both_sides_have_plenty_to_compare() -> None:
    assert sum(len([x for x in literals(t) if len(x) >= MIN_CHARS]) for t in sources(DOUBLE).values()) >= 40
    assert sum(len([x for x in literals(t) if len(x) >= MIN_CHARS]) for t in sources(PROPOSERS).values()) >= 40


def test_the_double_holds_no_string_of_the_proposers() -> None:
    assert shared(sources(PROPOSERS), sources(DOUBLE)) == []


def test_the_proposers_hold_no_string_of_the_double() -> None:
    assert shared(sources(DOUBLE), sources(PROPOSERS)) == []


def test_the_check_catches_a_copied_sentence(tmp_path: Path) -> None:
    proposer_text = next(x for t in sources(PROPOSERS).values() for x in literals(t)
                         if len(x) >= 30 and " " in x and "\n" not in x)
    spy = tmp_path / "spy.py"
    spy.write_text(f"RULE = re.compile({proposer_text!r}, re.IGNORECASE)\n")
    assert shared(sources(PROPOSERS), sources([spy]))
    assert shared(sources([spy]), sources(PROPOSERS))


# ---- no proposer sentence cures a flaw ---------------------------------------------------------------------------

DATA = "=== Finance/bills.csv ===\npayee | amount | due date\nNorthern Water | 42.10 | 2026-05-20\nCity Energy | 118.35 | 2026-05-18\n"
FLAWS = {
    "copies the example": ("Write the digest for today.\n\nExample:\nNorthern Water is due on Friday, Ana pays 42 pounds.\n",
                           lambda a: "Ana pays 42 pounds" in a),
    "copies the example under a heading": ("Write the digest.\n\n### Example week\nMon: bins out (Ben)\nTue: laundry (Ana)\n",
                                           lambda a: "Mon: bins out (Ben)" in a),
    "fences its answer": ("Write the digest laid out like this:\n\n```markdown\n## Due\n- <payee>: <amount>\n```\n",
                          lambda a: a.startswith("```")),
    "leaves bare slots literal": ("One line per bill:\n- [Payee]: [Amount] due [Due date]\n",
                                  lambda a: "[Payee]: [Amount]" in a),
    "echoes a conditional": ("## Due\nOne line per bill (write \"all clear\" unless a bill is due).\n",
                             lambda a: '(write "all clear" unless a bill is due)' in a),
    "narrates a tool call": ("With the Write tool, create Bills/<payee>.md for each bill.\n",
                             lambda a: "=== BILL" not in a and "tool" in a),
}


def sentences() -> list[str]:
    """What the proposers can write into a prompt: their constant texts that read as sentences."""
    out = set()
    for text in sources(PROPOSERS).values():
        for lit in literals(text):
            flat = " ".join(lit.split())
            if len(flat) >= 20 and len(flat.split()) >= 4 and re.search(r"[a-z]{3} [a-z]{2,}", flat, re.I):
                out.add(flat)
    return sorted(out)


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_no_sentence_a_proposer_writes_cures_a_flaw(flaw: str) -> None:
    prompt, shows = FLAWS[flaw]
    double = FlawedModels(seed=3)

    def answer(extra: str) -> str:
        return double(Request("gemma3:12b", [{"role": "user", "content": f"{prompt}\n{extra}\n\n{DATA}"}])).text

    assert shows(answer("")), answer("")
    said = sentences()
    assert len(said) >= 10
    cured = [s for s in said if not shows(answer(s))]
    assert cured == []
