"""The deterministic 1–5 mapping from checks, and the combination with the LLM judge's score."""

from __future__ import annotations

import pytest

from domain.runs import Check
from domain.scoring import combine, score_from_checks


def failed(name: str, hard: bool = True) -> Check:
    return Check(name, False, f"{name} detail", hard)


def test_all_passed_is_five() -> None:
    score, reasons = score_from_checks([Check("truncated", True), Check("min_words", True)])
    assert score == 5.0 and reasons == ["all 2 checks passed"]


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([failed("truncated")], 3.5),
        ([failed("blocks")], 3.0),
        ([failed("max_words")], 4.5),
        ([failed("code_fences"), failed("placeholder_leak")], 3.0),
        ([failed("something_new")], 4.0),  # an unknown hard check costs 1
        ([failed("thinking_burn", hard=False)], 4.75),
        ([failed("empty"), failed("failed")], 1.0),  # floor
        ([failed("truncated"), failed("min_words"), failed("sections"), failed("forbid")], 1.0),
    ],
)
def test_penalties(checks: list[Check], expected: float) -> None:
    assert score_from_checks([Check("ok", True), *checks])[0] == expected


def test_reasons_worst_first_with_penalty_and_advisory_flag() -> None:
    _, reasons = score_from_checks([failed("thinking_burn", hard=False), failed("sections"), failed("truncated")])
    assert reasons[0].startswith("truncated (-1.5): ")
    assert reasons[1].startswith("sections (-1): ")
    assert reasons[2].startswith("thinking_burn (-0.25, advisory): ")


def test_combine() -> None:
    assert combine(3.5, None, 0.5) == 3.5
    assert combine(3.0, 5.0, 0.5) == 4.0
    assert combine(3.0, 5.0, 0.0) == 3.0
    assert combine(3.0, 5.0, 1.0) == 5.0
    assert combine(3.0, 9.0, 1.0) == 5.0  # clamped
    assert combine(2.0, 4.0, 0.25) == 2.5
