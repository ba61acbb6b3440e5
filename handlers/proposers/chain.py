"""The proposers a cycle asks, in turn: the rules are the cheap first pass, an LLM proposer the general path.

vault.yml's `proposers` list says who may propose and in which order. When it names an LLM proposer, the rules
still go first on fresh evidence (no model call, the seed's known fixes), but they do not get two turns in a
row: once a rules delta was verified and not kept since the task's last change, the next cycle goes to the LLM
(which sees what was tried, the measurements and the failed checks with quotes) before any other rules variant.
Turns then alternate, so neither proposer spends the loop's patience on variations of one idea.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from domain.delta import Delta

Proposer = Callable[[Any], list[Delta]]
RULES = "rules"
SIGNATURE_DRIVEN = frozenset({RULES})  # proposers that propose only for an open signature (an LLM may on a score)


def last_turn(evidence: Any) -> str | None:
    """The proposer whose delta was last discarded (or failed) on this task since its last kept change."""
    tried = getattr(evidence, "tried", None) or ()
    done = [t for t in tried if t.get("outcome") in ("discarded", "failed")]
    return str(done[-1].get("proposer")) if done else None


def first_pass(rules: Proposer) -> Proposer:
    """The rules, silent for one turn after one of their deltas was discarded."""

    def propose(evidence: Any) -> list[Delta]:
        return [] if last_turn(evidence) == RULES else rules(evidence)

    propose.__name__ = "rules_first_pass"
    return propose


def chain(names: Sequence[str], rules: Proposer, llm: Callable[[str], Proposer]) -> list[tuple[str, Proposer]]:
    """(name, proposer) in vault.yml's order; with an LLM proposer listed, the rules become its first pass."""
    has_llm = any(n != RULES for n in names)
    return [(n, (first_pass(rules) if has_llm else rules) if n == RULES else llm(n)) for n in names]


__all__ = ["RULES", "SIGNATURE_DRIVEN", "chain", "first_pass", "last_turn"]
