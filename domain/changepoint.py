"""Where a task's quality shifted: a mean-shift change-point test on its score series, seeded so it replays.

A regression is a *level* change in noisy 1–5 scores, so the test is about means:

- **Statistic.** For a split at k (first score of the new regime), the standardised difference of means
  ``T_k = |mean(x[:k]) − mean(x[k:])| · sqrt(k (n − k) / n)`` (the CUSUM statistic up to the unknown noise
  scale, which the permutation test makes irrelevant). The split is ``k* = argmax T_k`` over splits that leave
  at least ``min_segment`` scores on each side.
- **Significance.** A permutation test of "no change": the scores are shuffled ``permutations`` times and
  ``max_k T_k`` recomputed each time; p = (1 + #{shuffled ≥ observed}) / (1 + permutations). Drawn from
  ``Generator(PCG64([seed, start, stop]))``, so every segment replays bit for bit whatever order it is tested in.
- **Noise floor.** A significant shift smaller than ``floor`` (the task's A/A noise floor, never below
  research.min_effect) is not reported: a real but tiny wobble is not a regression anyone should chase.
- **Where to look.** Seeded binary segmentation: the statistic is maximised over a fixed, deterministic set of
  intervals of halving lengths (the whole series, its halves, quarters … each overlapping its neighbour by half),
  so a drop that a later fix undid is found in the intervals around it, where one split of the whole series would
  see the two sides cancel (down to 1/64 of the series: narrow a long history with `--since` to see shorter
  episodes). The permutation test takes the same maximum over the same intervals. After a shift
  is found, each side is segmented again on its own. ``before``/``after`` are the means on either side of the
  split within the interval that found it: the levels just before and just after the change.
- **Where exactly.** With noise the split is uncertain by a few scores. A residual bootstrap (scores rebuilt as
  segment means plus residuals resampled within each side, ``location_resamples`` times) gives the central
  ``location_level`` interval of k*: the culprit lies between score ``span[0] − 1`` and score ``span[1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MAX_CELLS = 1_000_000  # permutations × scanned scores per test: bounds the work on very long series
SMALLEST = 64  # the smallest seeded intervals are 1/64 of the segment (and at least two minimal segments)


@dataclass(frozen=True)
class ShiftTest:
    """Everything a change-point answer depends on besides the scores; recorded so it replays exactly."""

    alpha: float = 0.05
    floor: float = 0.0
    permutations: int = 499
    min_segment: int = 3
    seed: int = 0
    location_resamples: int = 200
    location_level: float = 0.9
    max_shifts: int = 8

    def __post_init__(self) -> None:
        bad = [msg for failed, msg in (
            (not 0 < self.alpha < 1, "alpha must be in (0, 1), e.g. 0.05"),
            (not (math.isfinite(self.floor) and self.floor >= 0), "floor must be ≥ 0"),
            (self.permutations < 99, "permutations must be ≥ 99"),
            (self.min_segment < 1, "min_segment must be ≥ 1"),
            (self.location_resamples < 1, "location_resamples must be ≥ 1"),
            (not 0 < self.location_level < 1, "location_level must be in (0, 1)"),
            (self.max_shifts < 1, "max_shifts must be ≥ 1"),
        ) if failed]
        if bad:
            raise ValueError(f"change-point test: {'; '.join(bad)} (got {self})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Shift:
    """A significant level change: scores ``[start, index)`` averaged ``before``, ``[index, stop)`` ``after``."""

    index: int
    before: float
    after: float
    p_value: float
    statistic: float
    span: tuple[int, int]  # location interval of `index` (inclusive)
    start: int = 0
    stop: int = 0

    @property
    def change(self) -> float:
        """after − before: negative for a drop."""
        return self.after - self.before

    @property
    def is_drop(self) -> bool:
        return self.after < self.before

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["span"] = list(self.span)
        out["change"] = self.change
        return out


@dataclass(frozen=True)
class Segmentation:
    """All shifts found in a series (in index order) and the test that found them."""

    shifts: tuple[Shift, ...]
    n: int
    test: ShiftTest
    notes: tuple[str, ...] = field(default=())

    def drops(self) -> list[Shift]:
        return [s for s in self.shifts if s.is_drop]

    def latest_drop(self) -> Shift | None:
        """The most recent drop: what an audit of "quality fell" is about (a later recovery does not hide it)."""
        drops = self.drops()
        return drops[-1] if drops else None


def statistics(x: np.ndarray, min_segment: int) -> np.ndarray:
    """T_k along the last axis of `x` (length n), for the splits k = min_segment … n − min_segment (column j being
    k = min_segment + j). With the values centred, mean(x[:k]) − mean(x[k:]) = S_k · n / (k (n − k)) where S_k is
    the centred cumulative sum, so T_k = |S_k| · sqrt(n / (k (n − k))): one cumulative sum, O(size of x)."""
    n = x.shape[-1]
    k = np.arange(min_segment, n - min_segment + 1)
    centred = x - x.mean(axis=-1, keepdims=True)
    sums = np.cumsum(centred, axis=-1)[..., k - 1]
    np.abs(sums, out=sums)
    sums *= np.sqrt(n / (k * (n - k)))
    return sums


def best_split(x: Sequence[float], min_segment: int) -> tuple[int, float]:
    """(k*, T_k*) of one series split once; k* = −1 when the series is too short to split."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size < 2 * min_segment:
        return -1, 0.0
    t = statistics(arr, min_segment)
    j = int(np.argmax(t))
    return j + min_segment, float(t[j])


Layer = tuple[int, np.ndarray]  # (interval length, interval starts)


def seeded_layers(n: int, min_len: int, decay: float = 0.5) -> list[Layer]:
    """Seeded intervals of [0, n) (Kovács, Li, Bühlmann, Munk, "Seeded binary segmentation", Biometrika 2023), by
    layer: the whole series, then intervals of length n·decay^(k−1), each shifted by half its length, down to
    `min_len`. A change with a short regime on either side (a drop a later fix undid) stands out in the small
    intervals around it, where one split of the whole series sees the two sides cancel."""
    layers: list[Layer] = [(n, np.zeros(1, dtype=np.int64))]
    length = n * decay
    while length >= min_len:
        size = round(length)
        starts = np.round(np.arange(math.ceil((n - length) / (length / 2)) + 1) * (length / 2)).astype(np.int64)
        layers.append((size, np.unique(np.minimum(starts, n - size))))
        length *= decay
    return layers


def layer_statistics(cums: np.ndarray, layer: Layer, min_segment: int) -> np.ndarray:
    """T for every interval of a layer and every split in it, from the rows' cumulative sums `cums` (shape
    (rows, n + 1), leading 0): inside [lo, lo + L) the centred partial sum at split k is
    (C[lo + k] − C[lo]) − k/L · (C[lo + L] − C[lo]) — one gather per layer, no copy of the windows.
    Shape (rows, intervals, splits)."""
    size, starts = layer
    k = np.arange(min_segment, size - min_segment + 1)
    base = cums[:, starts][:, :, None]
    total = cums[:, starts + size][:, :, None] - base
    sums = cums[:, starts[:, None] + k[None, :]] - base
    sums -= total * (k / size)
    np.abs(sums, out=sums)
    sums *= np.sqrt(size / (k * (size - k)))
    return sums


def _cumsums(x: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def scan_max(x: np.ndarray, layers: Sequence[Layer], min_segment: int) -> np.ndarray:
    """max over every seeded interval and its splits of T, for each row of `x` (shape (rows, n))."""
    cums = _cumsums(x)
    best = np.full(x.shape[0], -1.0)
    for layer in layers:
        if layer[0] >= 2 * min_segment:
            np.maximum(best, layer_statistics(cums, layer, min_segment).max(axis=(1, 2)), out=best)
    return best


def best_in(x: np.ndarray, layers: Sequence[Layer], min_segment: int) -> tuple[int, float, int, int]:
    """(k*, T*, lo, hi): the split of largest T over all seeded intervals [lo, hi) (k* indexes the whole series)."""
    cums = _cumsums(x[None, :])
    found = (-1, 0.0, 0, x.size)
    for layer in layers:
        size, starts = layer
        if size < 2 * min_segment:
            continue
        t = layer_statistics(cums, layer, min_segment)[0]
        i, j = np.unravel_index(int(np.argmax(t)), t.shape)
        if t[i, j] > found[1] + 1e-12:
            lo = int(starts[i])
            found = (lo + int(j) + min_segment, float(t[i, j]), lo, lo + size)
    return found


def permutation_p(x: Sequence[float] | np.ndarray, observed: float, test: ShiftTest, rng: np.random.Generator,
                  layers: Sequence[Layer] | None = None) -> float:
    """P(max T ≥ observed) under exchangeability (no change at all), by seeded shuffles of the whole segment —
    the maximum taken over the same intervals as the observed one, so scanning many intervals is paid for."""
    arr = np.asarray(x, dtype=np.float64)
    n = arr.size
    spans = layers or [(n, np.zeros(1, dtype=np.int64))]
    cells = sum(size * len(starts) for size, starts in spans)
    count = min(test.permutations, max(99, MAX_CELLS // max(cells, 1)))
    shuffled = rng.permuted(np.broadcast_to(arr, (count, n)), axis=1)
    exceed = int(np.count_nonzero(scan_max(shuffled, spans, test.min_segment) >= observed - 1e-12))
    return (1 + exceed) / (1 + count)


def location_span(x: Sequence[float] | np.ndarray, k: int, test: ShiftTest, rng: np.random.Generator) -> tuple[int, int]:
    """Central `location_level` interval of the split, by a residual bootstrap within both sides."""
    arr = np.asarray(x, dtype=np.float64)
    n = arr.size
    left, right = arr[:k], arr[k:]
    res_l, res_r = left - left.mean(), right - right.mean()
    if not (res_l.any() or res_r.any()):
        return k, k
    r = min(test.location_resamples, max(50, MAX_CELLS // n))
    boot = np.empty((r, n))
    boot[:, :k] = left.mean() + rng.choice(res_l, size=(r, k))
    boot[:, k:] = right.mean() + rng.choice(res_r, size=(r, n - k))
    ks = statistics(boot, test.min_segment).argmax(axis=-1) + test.min_segment
    tail = (1 - test.location_level) / 2
    lo, hi = np.quantile(ks, [tail, 1 - tail], method="nearest")
    return int(min(lo, k)), int(max(hi, k))


def find_shifts(scores: Sequence[float], test: ShiftTest | None = None) -> Segmentation:
    """Seeded binary segmentation of `scores` (in history order) into regimes of different mean."""
    test = test or ShiftTest()
    values = [float(s) for s in scores]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("change-point test: scores must be finite numbers")
    found: list[Shift] = []
    notes: list[str] = []
    pending = [(0, len(values))]
    while pending and len(found) < test.max_shifts:
        start, stop = pending.pop(0)
        segment = np.asarray(values[start:stop], dtype=np.float64)
        if segment.size < 2 * test.min_segment:
            continue
        layers = seeded_layers(segment.size, max(2 * test.min_segment, math.ceil(segment.size / SMALLEST)))
        k, t, lo, hi = best_in(segment, layers, test.min_segment)
        if k < 0 or t <= 0:
            continue
        rng = np.random.Generator(np.random.PCG64([test.seed, start, stop]))
        p = permutation_p(segment, t, test, rng, layers)
        if p >= test.alpha:
            continue
        before, after = float(segment[lo:k].mean()), float(segment[k:hi].mean())
        if abs(after - before) < test.floor:
            notes.append(f"shift of {after - before:+.2f} at score {start + k} is significant (p={p:.3f}) but "
                         f"under the noise floor {test.floor:.2f}")
            continue
        a, b = location_span(segment[lo:hi], k - lo, test, rng)
        found.append(Shift(start + k, before, after, p, t, (start + lo + a, start + lo + b), start + lo, start + hi))
        pending += [(start, start + k), (start + k, stop)]
    return Segmentation(tuple(sorted(found, key=lambda s: s.index)), len(values), test, tuple(notes))
