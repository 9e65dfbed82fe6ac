"""Timing statistics with a validity verdict, in the spirit of MLPerf LoadGen (pure functions).

A timing is VALID only when enough timed rounds ran (``min_rounds``) and they took long enough in
total (``min_duration``): a median of two 20 ms calls says little about a model. Warmup rounds
never reach these functions; callers pass the timed rounds only. Generation timings come from
adaptive rounds (:mod:`pytest_vdbench.timing`): they are VALID only when the 95 % interval
of the median is within the run's precision too, and each summary keeps that interval and the rounds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_vdbench.timing import TimingPolicy, median_interval, percentile, timing_problems

__all__ = ["TimingStats", "percentile", "summarize"]  # percentile: re-exported from checks.timing


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
    #: the median's 95 % interval (order statistics; lower confidence under 6 rounds, see ci_confidence)
    ci_low: float | None = None
    ci_high: float | None = None
    ci_confidence: float | None = None
    precision: float | None = None  # the interval's larger side / median
    data: list[float] = field(default_factory=list)  # every timed round, in order (the comparison's input)

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
    policy: TimingPolicy | None = None,
) -> TimingStats:
    """Median, p90, spread, the median's interval and a VALID/INVALID verdict for the timed rounds ``samples``.

    ``min_rounds`` and ``min_duration`` (seconds, summed over the timed rounds) must both be met;
    with a ``policy`` (adaptive rounds) so must its precision, and a capped timing says so. The
    reason of an INVALID verdict says which was not, by how much, and what would fix it.
    """
    values = [float(v) for v in samples]
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"timings must be finite and non-negative, got {bad[0]!r}")
    n = len(values)
    total = math.fsum(values)
    if policy is None:
        policy = TimingPolicy(min_rounds=min_rounds, min_duration=min_duration, precision=math.inf)
    reasons = timing_problems(values, policy)
    label = f"{what}: " if what else ""
    if not values:
        return TimingStats(0, 0.0, None, None, None, None, None, None, None, False, label + "; ".join(reasons), warmup_rounds)
    interval = median_interval(values)
    assert interval is not None
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
        ci_low=interval.low,
        ci_high=interval.high,
        ci_confidence=interval.confidence,
        precision=interval.relative if math.isfinite(interval.relative) else None,
        data=values,
    )
