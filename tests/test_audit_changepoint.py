"""The change-point test on score series: many shapes of a drop, no false alarms on noise, exact replay."""

from __future__ import annotations

import numpy as np
import pytest

from domain.changepoint import ShiftTest, best_split, find_shifts


def judged(rng: np.random.Generator, mean: float, n: int, sd: float = 0.7) -> list[float]:
    """Scores a noisy 1–5 judge gives runs of true quality `mean`."""
    return list(np.clip(np.round(rng.normal(mean, sd, n) * 2) / 2, 1, 5))


@pytest.mark.parametrize(("before", "after", "at", "n"), [
    ([4.0], [2.0], 6, 14),  # a clean step
    ([5.0, 4.5], [3.0, 3.5], 8, 20),  # alternating levels
    ([4.0], [2.5], 3, 12),  # early: the first regime as short as allowed
    ([4.0], [2.5], 9, 12),  # late: the last regime as short as allowed
])
def test_a_clean_drop_is_found_exactly_where_it_happened(before: list[float], after: list[float], at: int,
                                                         n: int) -> None:
    scores = [before[i % len(before)] for i in range(at)] + [after[i % len(after)] for i in range(n - at)]
    seg = find_shifts(scores)
    drop = seg.latest_drop()
    assert drop is not None and drop.index == at
    assert drop.span[0] <= at <= drop.span[1] and drop.span[1] - drop.span[0] <= 2
    assert drop.p_value < 0.05 and drop.change < 0


@pytest.mark.parametrize("seed", range(6))
def test_a_drop_in_judge_noise_is_found_near_where_it_happened(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = judged(rng, 4.2, 30) + judged(rng, 3.0, 30)
    drop = find_shifts(scores, ShiftTest(floor=0.3)).latest_drop()
    assert drop is not None
    assert drop.span[0] <= 30 <= drop.span[1]  # the location interval covers the true change
    assert -1.7 < drop.change < -0.7


def test_the_latest_drop_is_the_regression_even_after_an_earlier_recovery() -> None:
    scores = [4.0] * 5 + [2.0] * 5 + [4.0] * 5 + [3.0] * 5
    seg = find_shifts(scores)
    assert [s.index for s in seg.shifts] == [5, 10, 15]
    drop = seg.latest_drop()
    assert drop is not None and drop.index == 15 and drop.change == pytest.approx(-1.0)


def test_a_rise_is_a_shift_but_no_regression() -> None:
    seg = find_shifts([2.0] * 8 + [4.5] * 8)
    assert [s.index for s in seg.shifts] == [8] and seg.latest_drop() is None


def test_a_significant_drop_under_the_noise_floor_is_noted_not_reported() -> None:
    scores = [4.2] * 10 + [4.0] * 10
    assert find_shifts(scores, ShiftTest(floor=0.0)).latest_drop() is not None
    seg = find_shifts(scores, ShiftTest(floor=0.3))
    assert seg.latest_drop() is None
    assert seg.notes and "under the noise floor 0.30" in seg.notes[0]


@pytest.mark.parametrize("scores", [[3.0] * 20, [4.0, 2.0] * 10, [5.0], []])
def test_flat_alternating_or_short_series_have_no_shift(scores: list[float]) -> None:
    assert find_shifts(scores).shifts == ()


def test_noise_alone_rarely_raises_an_alarm() -> None:
    """Stationary judge noise, 120 seeded series: the permutation test keeps false alarms near α."""
    test = ShiftTest(max_shifts=1, permutations=199)
    alarms = sum(bool(find_shifts(judged(np.random.default_rng(1000 + s), 3.8, 40), test).shifts) for s in range(120))
    assert alarms <= 0.09 * 120


def test_the_same_scores_and_seed_replay_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    scores = judged(rng, 4.0, 25) + judged(rng, 3.2, 25)
    a, b = find_shifts(scores, ShiftTest(seed=11)), find_shifts(scores, ShiftTest(seed=11))
    assert a == b
    assert find_shifts(scores, ShiftTest(seed=12)).shifts[0].index == a.shifts[0].index


def test_the_split_statistic_prefers_the_true_split() -> None:
    k, t = best_split([1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0], 2)
    assert k == 4 and t > 0
    assert best_split([1.0, 2.0, 3.0], 2) == (-1, 0.0)


def test_a_bad_test_setting_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        ShiftTest(alpha=1.5)
    with pytest.raises(ValueError, match="finite"):
        find_shifts([1.0, float("nan")])
