"""Timing statistics with a validity verdict, in the spirit of MLPerf LoadGen (pure functions).

A timing is VALID only when enough timed rounds ran (``min_rounds``) and they took long enough in
total (``min_duration``): a median of two 20 ms calls says little about a model. Warmup rounds
never reach these functions; callers pass the timed rounds only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TimingStats", "percentile", "summarize"]


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
class TimingStats:
    """Summary of one timing's timed rounds (seconds) and whether it may be trusted."""

    rounds: int
    total_seconds: float
    median: float | None
    p90: float | None
    mean: float | None
    stdev: float | None  # sample standard deviation; None under two rounds
    iqr: float | None  # p75 - p25
    min: float | None
    max: float | None
    valid: bool
    reason: str  # why INVALID ("" when VALID)
    warmup_rounds: int = 0  # excluded before these statistics (for the record)

    @property
    def verdict(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def summarize(
    samples: Sequence[float],
    *,
    min_rounds: int,
    min_duration: float,
    warmup_rounds: int = 0,
    what: str = "",
) -> TimingStats:
    """Median, p90, spread and a VALID/INVALID verdict for the timed rounds ``samples``.

    ``min_rounds`` and ``min_duration`` (seconds, summed over the timed rounds) must both be met;
    the reason of an INVALID verdict says which was not, by how much, and what would fix it.
    """
    values = [float(v) for v in samples]
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"timings must be finite and non-negative, got {bad[0]!r}")
    n = len(values)
    total = math.fsum(values)
    reasons: list[str] = []
    label = f"{what}: " if what else ""
    if n < min_rounds:
        reasons.append(f"{n} timed round(s) < minimum {min_rounds} (--vdbench-min-rounds)")
    if total < min_duration:
        need = ""
        if n and total > 0:
            need = f"; about {math.ceil(min_duration / (total / n))} rounds of this length would reach it"
        reasons.append(f"timed rounds total {total:.3g}s < minimum {min_duration:g}s (--vdbench-min-duration){need}")
    if not values:
        return TimingStats(0, 0.0, None, None, None, None, None, None, None, False, label + "; ".join(reasons), warmup_rounds)
    return TimingStats(
        rounds=n,
        total_seconds=total,
        median=statistics.median(values),
        p90=percentile(values, 90),
        mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if n >= 2 else None,
        iqr=percentile(values, 75) - percentile(values, 25),
        min=min(values),
        max=max(values),
        valid=not reasons,
        reason=(label + "; ".join(reasons)) if reasons else "",
        warmup_rounds=warmup_rounds,
    )
