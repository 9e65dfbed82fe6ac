"""Adaptive timed rounds: the median's interval, the stopping rule and the verdict (pure functions)."""

from __future__ import annotations

import random

import pytest

from pytest_vdbench.timing import TimingPolicy, median_change, median_interval, stop_reason, timing_problems


def test_median_interval_uses_binomial_ranks() -> None:
    # n = 20: the textbook 95 % interval is [x(6), x(15)] with coverage 95.9 %
    iv = median_interval([float(i) for i in range(1, 21)])
    assert iv is not None
    assert (iv.low, iv.high, iv.median) == (6.0, 15.0, 10.5)
    assert iv.confidence == pytest.approx(0.9586, abs=1e-4)
    six = median_interval([float(i) for i in range(6)])
    assert six is not None and (six.low, six.high) == (0.0, 5.0) and six.confidence == pytest.approx(1 - 2 / 64)


def test_under_six_rounds_the_range_has_less_than_95_percent() -> None:
    iv = median_interval([1.0, 1.1, 0.9, 1.2])
    assert iv is not None and iv.confidence == pytest.approx(1 - 2 / 16)
    assert "88 % interval; a 95 % one needs at least 6 rounds" in iv.describe()
    assert median_interval([]) is None


def test_interval_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = random.Random(7)
    misses = 0
    for _ in range(2000):
        iv = median_interval([rng.lognormvariate(0, 0.5) for _ in range(25)])
        assert iv is not None
        misses += not iv.low <= 1.0 <= iv.high  # lognormal(0, s) has median 1
    assert 0.02 < misses / 2000 < 0.06


def test_large_samples_use_the_normal_approximation_consistently() -> None:
    for n in (200, 201, 1000):
        iv = median_interval([float(i) for i in range(n)])
        assert iv is not None and 0.95 <= iv.confidence < 0.97


def test_stops_once_precise_and_long_enough() -> None:
    policy = TimingPolicy(min_rounds=3, min_duration=1.0, max_duration=30.0, max_rounds=1000, precision=0.05)
    steady = [0.1] * 9
    assert stop_reason(steady, policy) is None  # 0.9 s < min_duration
    assert stop_reason([*steady, 0.1], policy) == "precise"
    assert timing_problems([*steady, 0.1], policy) == []


def test_noisy_rounds_keep_going_then_cap_invalid() -> None:
    rng = random.Random(3)
    policy = TimingPolicy(min_rounds=3, min_duration=0.0, max_duration=2.0, max_rounds=1000, precision=0.05)
    noisy = [rng.uniform(0.05, 0.5) for _ in range(8)]
    assert stop_reason(noisy, policy) is None
    capped = [7.5] * 3 + [9.0]
    assert stop_reason(capped, policy) == "max_duration"
    (problem,) = timing_problems(capped, TimingPolicy(max_duration=30.0))
    assert problem.startswith("capped at 30s after 4 rounds (--vdbench-max-duration); median known to ±")
    assert "(94 % interval" not in problem and "(88 % interval; a 95 % one needs at least 6 rounds)" in problem


def test_max_rounds_cap_and_its_reason() -> None:
    policy = TimingPolicy(min_rounds=1, min_duration=0.0, max_rounds=6, precision=0.01)
    rounds = [0.1, 0.2, 0.1, 0.3, 0.1, 0.25]
    assert stop_reason(rounds, policy) == "max_rounds"
    (problem,) = timing_problems(rounds, policy)
    assert problem.startswith("capped at 6 rounds (--vdbench-max-rounds); median known to ±")


def test_too_few_and_too_short_are_reported() -> None:
    problems = timing_problems([0.02] * 2, TimingPolicy(min_rounds=3, min_duration=1.0))
    assert problems[0] == "2 timed round(s) < minimum 3 (--vdbench-min-rounds)"
    assert "timed rounds total 0.04s < minimum 1s (--vdbench-min-duration); about 50 rounds" in problems[1]


def test_median_change_sees_a_real_slowdown_and_not_noise() -> None:
    rng = random.Random(11)
    a = [rng.lognormvariate(0, 0.1) * 0.1 for _ in range(60)]
    same = [rng.lognormvariate(0, 0.1) * 0.1 for _ in range(60)]
    slower = [rng.lognormvariate(0, 0.1) * 0.13 for _ in range(60)]
    aa, ab = median_change(a, same), median_change(a, slower)
    assert aa is not None and ab is not None
    assert aa.low < 1 < aa.high and not aa.exceeds(0.1)
    assert ab.exceeds(0.1) and ab.low > 1 and ab.describe().startswith("+")
    assert median_change(a, same) == aa  # seeded: same rounds, same interval
    assert median_change([], same) is None


def test_a_noisy_pair_with_a_big_median_jump_is_not_a_regression() -> None:
    # two medians 40 % apart, but three rounds each spread over 5x: the interval spans 1.1
    change = median_change([0.1, 0.3, 0.5], [0.42, 0.15, 0.6])
    assert change is not None and change.ratio > 1.1 and not change.exceeds(0.1)


def test_drift_within_runs_widens_the_interval() -> None:
    # the host's load drifts: rounds come in slow and fast stretches; a shifted median alone is no regression
    before = [0.1 * (1.5 if (i // 20) % 2 else 1.0) for i in range(100)]  # fast, slow, fast, slow, fast
    after = [0.1 * (1.0 if (i // 20) % 2 else 1.5) for i in range(100)]  # slow, fast, slow, fast, slow
    change = median_change(before, after)  # medians 0.1 -> 0.15, but each run swings between both
    assert change is not None and change.ratio == pytest.approx(1.5) and not change.exceeds(0.1)
