"""Timing statistics (pytest_vdbench.report.stats) on known answers, and the timed-round selection."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from pytest_vdbench.report.stats import percentile, summarize


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        (list(range(1, 11)), 90, 9.1),
        (list(range(1, 11)), 0, 1.0),
        (list(range(1, 11)), 100, 10.0),
        ([5.0], 90, 5.0),
        ([3, 1, 2], 25, 1.5),  # unsorted input
    ],
)
def test_percentile_known_answers(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_agrees_with_numpy_and_statistics() -> None:
    rng = np.random.default_rng(7)
    values = list(rng.exponential(0.2, size=37))
    for q in (10, 25, 50, 75, 90, 99):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    assert [percentile(values, q) for q in (25, 50, 75)] == pytest.approx(quartiles)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_of_ten_rounds() -> None:
    s = summarize([0.1 * i for i in range(1, 11)], min_rounds=3, min_duration=1.0)
    assert s.rounds == 10
    assert s.total_seconds == pytest.approx(5.5)
    assert s.median == pytest.approx(0.55)
    assert s.p90 == pytest.approx(0.91)
    assert s.iqr == pytest.approx(0.45)  # p75 0.775 - p25 0.325
    assert s.stdev == pytest.approx(statistics.stdev([0.1 * i for i in range(1, 11)]))
    assert (s.min, s.max) == pytest.approx((0.1, 1.0))
    assert s.valid and s.verdict == "VALID" and s.reason == ""


def test_too_few_rounds_is_invalid_with_the_reason() -> None:
    s = summarize([0.5, 0.7], min_rounds=3, min_duration=0.0, what="generate[fox]")
    assert not s.valid and s.verdict == "INVALID"
    assert s.reason == "generate[fox]: 2 timed round(s) < minimum 3 (--vdbench-min-rounds)"
    assert s.median == pytest.approx(0.6)  # still reported, just not trusted


def test_too_short_is_invalid_and_says_how_many_rounds_would_do() -> None:
    s = summarize([0.02] * 3, min_rounds=3, min_duration=1.0)
    assert not s.valid
    assert "timed rounds total 0.06s < minimum 1s (--vdbench-min-duration)" in s.reason
    assert "about 50 rounds" in s.reason


def test_both_minimums_met_exactly_is_valid() -> None:
    assert summarize([0.5, 0.25, 0.25], min_rounds=3, min_duration=1.0).valid


def test_one_round_has_no_spread_and_no_rounds_has_no_figures() -> None:
    one = summarize([1.5], min_rounds=1, min_duration=0)
    assert one.valid and one.stdev is None and one.iqr == 0.0 and one.p90 == 1.5
    none = summarize([], min_rounds=1, min_duration=0)
    assert not none.valid and none.median is None and "0 timed round(s) < minimum 1" in none.reason


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="finite and non-negative"):
        summarize([0.1, float("nan")], min_rounds=1, min_duration=0)
    with pytest.raises(ValueError, match="finite and non-negative"):
        summarize([-0.1], min_rounds=1, min_duration=0)


def test_as_dict_carries_the_verdict() -> None:
    d = summarize([1.0, 2.0, 3.0], min_rounds=3, min_duration=0, warmup_rounds=2).as_dict()
    assert d["verdict"] == "VALID" and d["median"] == 2.0 and d["warmup_rounds"] == 2
