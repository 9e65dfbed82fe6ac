"""Adaptive timed rounds: keep timing a case until its median is known well enough (pure functions).

In the spirit of pytest-benchmark's calibration and MLPerf LoadGen's early stopping: after warmup,
a case keeps timing rounds until it has ``min_rounds`` AND ``min_duration`` seconds AND the 95 %
confidence interval of its median lies within ``± precision`` of the median, or until
``max_duration`` / ``max_rounds`` is spent; then it stops, and a capped timing is INVALID with the
reason. The interval is distribution-free: order statistics whose ranks come from the binomial
distribution (the median exceeds each round with probability 1/2), so no normality is assumed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CONFIDENCE",
    "Change",
    "MedianInterval",
    "TimingPolicy",
    "median_change",
    "median_interval",
    "paired_change",
    "percentile",
    "stop_reason",
    "timing_problems",
]

#: the confidence of the median's interval
CONFIDENCE = 0.95


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    The same definition as ``numpy.percentile``'s default and ``statistics.quantiles(...,
    method="inclusive")``: p50 of [1, 2, 3, 4] is 2.5, p90 of 1..10 is 9.1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q = {q!r} is outside [0, 100]")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class TimingPolicy:
    """When a case's timed rounds stop, and when they make a VALID timing."""

    min_rounds: int = 3
    min_duration: float = 1.0
    max_duration: float = 30.0
    max_rounds: int = 1000
    precision: float = 0.05  # relative half-width of the median's 95 % interval


@dataclass(frozen=True)
class MedianInterval:
    """A confidence interval of the median: ``[low, high]`` covers it with ``confidence``."""

    median: float
    low: float
    high: float
    confidence: float

    @property
    def relative(self) -> float:
        """The larger side of the interval as a fraction of the median (inf for a zero median)."""
        if self.median <= 0:
            return 0.0 if self.high == self.low == self.median else math.inf
        return max(self.median - self.low, self.high - self.median) / self.median

    def describe(self) -> str:
        """``±4.1 %`` (plus the confidence when it is not the 95 % asked for)."""
        text = f"±{100 * self.relative:.2g} %" if math.isfinite(self.relative) else "±inf"
        if self.confidence < CONFIDENCE - 1e-9:
            text += f" ({100 * self.confidence:.0f} % interval; a 95 % one needs at least 6 rounds)"
        return text


#: above this many rounds the binomial ranks come from its normal approximation (exact sums get slow)
_EXACT_UP_TO = 200


def _normal_interval(ordered: list[float], median: float, confidence: float) -> MedianInterval:
    n = len(ordered)
    z = statistics.NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    k = max(1, math.floor((n - z * math.sqrt(n)) / 2))
    # continuity-corrected P(B <= k-1)
    below = statistics.NormalDist(n / 2, math.sqrt(n) / 2).cdf(k - 0.5)
    return MedianInterval(median, ordered[k - 1], ordered[n - k], 1 - 2 * below)


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MedianInterval | None:
    """The order-statistic interval ``[x(k), x(n+1-k)]`` of the median, at least ``confidence`` when possible.

    ``k`` is the largest rank with ``2 P(B <= k-1) <= 1 - confidence``: for n = 6 that is the whole
    range (96.9 %), for n = 20 it is [x(6), x(15)] (95.9 %). Under 6 values no interval reaches
    95 %: the range [min, max] is returned with its lower confidence ``1 - 2^(1-n)``.
    """
    n = len(values)
    if n == 0:
        return None
    ordered = sorted(values)
    median = statistics.median(ordered)
    if n > _EXACT_UP_TO:
        return _normal_interval(ordered, median, confidence)
    # exact integers: P(B <= k) = cumulative / 2**n stays exact for any n
    whole = 2**n
    cumulative = 1  # C(n, 0)
    k = 0
    while k + 1 <= n // 2 and 2 * cumulative / whole <= 1 - confidence:
        k += 1  # ranks k+1 .. n-k still cover the median with enough confidence
        cumulative += math.comb(n, k)
    if k == 0:
        k, below = 1, 1  # under 6 values: the range, whatever its confidence
    else:
        below = cumulative - math.comb(n, k)  # P(B <= k-1) * 2**n
    covered = 1 - 2 * below / whole if n > 1 else 0.0
    return MedianInterval(median, ordered[k - 1], ordered[n - k], covered)


def stop_reason(samples: Sequence[float], policy: TimingPolicy) -> str | None:
    """Why the timed rounds ``samples`` (seconds, in order) may stop now; None: time another round."""
    n = len(samples)
    total = math.fsum(samples)
    if n >= policy.max_rounds:
        return "max_rounds"
    if total >= policy.max_duration:
        return "max_duration"
    if n < policy.min_rounds or total < policy.min_duration:
        return None
    interval = median_interval(samples)
    if interval is not None and interval.confidence >= CONFIDENCE and interval.relative <= policy.precision:
        return "precise"
    return None


def timing_problems(samples: Sequence[float], policy: TimingPolicy) -> list[str]:
    """Why the timed rounds ``samples`` do not make a VALID timing ([] when they do)."""
    n = len(samples)
    total = math.fsum(samples)
    problems: list[str] = []
    if n < policy.min_rounds:
        problems.append(f"{n} timed round(s) < minimum {policy.min_rounds} (--vdbench-min-rounds)")
    if total < policy.min_duration:
        need = ""
        if n and total > 0:
            need = f"; about {math.ceil(policy.min_duration / (total / n))} rounds of this length would reach it"
        problems.append(f"timed rounds total {total:.3g}s < minimum {policy.min_duration:g}s (--vdbench-min-duration){need}")
    if not math.isfinite(policy.precision):  # a single measurement (startup, fit): no precision asked
        return problems
    interval = median_interval(samples)
    precise = interval is not None and interval.confidence >= CONFIDENCE and interval.relative <= policy.precision
    if interval is not None and not precise:
        known = f"median known to {interval.describe()}, not ±{100 * policy.precision:g} % (--vdbench-precision)"
        if n >= policy.max_rounds:
            problems.append(f"capped at {n} rounds (--vdbench-max-rounds); {known}")
        elif total >= policy.max_duration:
            problems.append(f"capped at {policy.max_duration:g}s after {n} rounds (--vdbench-max-duration); {known}")
        else:
            problems.append(known)
    return problems


@dataclass(frozen=True)
class Change:
    """How a timing's median moved between two runs: ``ratio`` = after / before with its 95 % interval."""

    ratio: float
    low: float
    high: float

    def exceeds(self, threshold: float) -> bool:
        """A regression: slower by more than ``threshold``, and really slower (the interval lies above 1)."""
        return self.ratio > 1 + threshold and self.low > 1

    def improves(self, threshold: float) -> bool:
        """An improvement: faster by more than ``threshold``, and really faster (the interval lies below 1)."""
        return self.ratio < 1 - threshold and self.high < 1

    def describe(self) -> str:
        return f"{100 * (self.ratio - 1):+.1f} % (95 % CI {100 * (self.low - 1):+.1f} % .. {100 * (self.high - 1):+.1f} %)"


def _block_index(n: int, rng: np.random.Generator, resamples: int) -> np.ndarray[Any, Any]:
    """Indices of ``resamples`` moving-block bootstrap resamples of ``n`` rounds: blocks of ~sqrt(n) consecutive rounds.

    Consecutive rounds share the host's load of the moment; resampling whole blocks keeps that
    drift in the interval, where resampling single rounds would pretend every round independent.
    """
    size = max(1, round(math.sqrt(n)))
    count = math.ceil(n / size)
    starts = rng.integers(0, n - size + 1, size=(resamples, count))
    index: np.ndarray[Any, Any] = (starts[:, :, None] + np.arange(size)).reshape(resamples, -1)[:, :n]
    return index


def _block_medians(rounds: np.ndarray[Any, Any], rng: np.random.Generator, resamples: int) -> np.ndarray[Any, Any]:
    """Medians of moving-block bootstrap resamples of ``rounds``."""
    medians: np.ndarray[Any, Any] = np.median(rounds[_block_index(rounds.size, rng, resamples)], axis=1)
    return medians


def median_change(before: Sequence[float], after: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> Change | None:
    """The ratio of medians ``after / before`` and its 95 % moving-block bootstrap interval.

    Each run's rounds (in the order they were timed) are resampled independently and seeded, so
    the same rounds give the same verdict. None when either run has no rounds or a zero median.
    """
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if a.size == 0 or b.size == 0 or float(np.median(a)) <= 0:
        return None
    rng = np.random.default_rng(seed)
    ratios = _block_medians(b, rng, resamples) / np.maximum(_block_medians(a, rng, resamples), np.finfo(np.float64).tiny)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Change(float(np.median(b) / np.median(a)), float(low), float(high))


def paired_change(before: Sequence[float], after: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> Change | None:
    """How ``after`` compares with ``before`` for rounds timed in alternation (round i of both sides
    came from cycle i): the median of the cycles' ratios, with its 95 % moving-block bootstrap interval.

    Each cycle's ratio divides out the host's speed of that moment, which both sides shared, so
    drift neither widens the interval nor, as between two separate runs, passes for a change.
    Blocks of consecutive cycles keep what drift is left (an adapter's own warm-up, say) in the
    interval. Unequal lengths are cut to the shorter. None when either side has no rounds or a zero round.
    """
    n = min(len(before), len(after))
    a, b = np.asarray(before[:n], dtype=np.float64), np.asarray(after[:n], dtype=np.float64)
    if n == 0 or float(np.min(a)) <= 0:
        return None
    ratios = b / a
    index = _block_index(n, np.random.default_rng(seed), resamples)
    low, high = np.percentile(np.median(ratios[index], axis=1), [2.5, 97.5])
    return Change(float(np.median(ratios)), float(low), float(high))
