"""Proposers: evidence in, candidate deltas out (best first).

`rules` (handlers.proposers.rules.propose) needs no model; the LLM proposers live in handlers.proposers.llm.
Every proposer has the shape `Callable[[Evidence], list[Delta]]`; the cycle verifies the first delta it has
not verified before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.delta import Delta

Proposer = Callable[[Any], list[Delta]]

__all__ = ["Proposer"]
