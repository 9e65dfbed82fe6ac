"""The opt-in throughput scenario: concurrent clients, busy answers counted, the throughput floor."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import toy_manifest
from pytest_vdbench.checks.load import run_level
from pytest_vdbench.endpoint import AdapterError, Generation


def _gen(total: float, server: float) -> Generation:
    return Generation(np.zeros(1, np.float32), server_seconds=server, total_seconds=total, peak_rss_bytes=None, nbytes=4)


def test_clients_really_run_at_once_and_queue_time_is_separated() -> None:
    in_flight, peak, lock, everyone = [0], [0], threading.Lock(), threading.Event()

    def call() -> Generation:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            if in_flight[0] == 3:
                everyone.set()
        everyone.wait(10)  # the first calls wait until all three clients are inside at once
        with lock:
            in_flight[0] -= 1
        return _gen(0.4, 0.1)

    level = run_level(call, concurrency=3, requests=9, duration=60)
    assert peak[0] == 3 and len(level.latencies) == 9
    doc = level.as_dict()
    assert doc["latency_seconds"]["p50"] == pytest.approx(0.4) and doc["queue_p50_seconds"] == pytest.approx(0.3)
    assert doc["compute_p50_seconds"] == pytest.approx(0.1) and doc["throughput_per_second"] > 0


def test_busy_answers_are_counted_and_other_errors_kept() -> None:
    answers = iter([409, 429, 503, 200, 500, 200])
    lock = threading.Lock()

    def call() -> Generation:
        with lock:
            status = next(answers)
        if status != 200:
            raise AdapterError(f"POST /predictions answered {status}", status=status)
        return _gen(0.01, 0.01)

    level = run_level(call, concurrency=1, requests=6, duration=60)
    assert dict(level.busy) == {409: 1, 429: 1, 503: 1}
    assert level.errors == ["POST /predictions answered 500"] and len(level.latencies) == 2
    assert level.as_dict()["busy"] == {"409": 1, "429": 1, "503": 1}


def test_a_level_stops_at_its_duration() -> None:
    stop = threading.Event()

    def call() -> Generation:
        stop.wait(0.05)  # a slow model: 0.05 s a request
        return _gen(0.05, 0.05)

    level = run_level(call, concurrency=2, requests=10_000, duration=0.3)
    assert 0 < len(level.latencies) < 100


def _run(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=process", "-p", "no:cacheprovider", "-rfEs", *extra
    )


def test_throughput_runs_only_when_the_manifest_asks(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    plain = _run(pytester, write_suite(toy_manifest()), "--collect-only", "-q")
    assert "test_throughput" not in plain.stdout.str()
    load = {"concurrency": [1, 2], "requests": 6, "duration": "20s"}
    result = _run(pytester, write_suite(toy_manifest(load=load)), "-k", "throughput", "-v", "--vdbench-report=rep")
    result.stdout.fnmatch_lines(["*toy::test_throughput[[]fox[]] PASSED*"])
    md = (pytester.path / "rep" / "report.md").read_text()
    levels = re.findall(r"^\| toy \| fox \| (\d) \| [\d.]+ \| [\d.]+m?s \|", md.split("## Throughput", 1)[1], re.M)
    assert levels == ["1", "2"]  # one row per concurrency level


def test_throughput_floor_fails_a_model_below_it(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = toy_manifest(options={"fault": "none", "delay": 0.1}, load={"concurrency": [1, 2], "requests": 4, "duration": "20s"})
    doc["expect"]["budgets"] = {"throughput_min": 1000}
    result = _run(pytester, write_suite(doc), "-k", "throughput")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*throughput * outputs/s (best, at concurrency *) is below expect.budgets.throughput_min 1000*"])


def test_report_rates_never_read_as_exponents() -> None:
    """A fast toy at concurrency 1 serves > 1000 outputs/s: '1.23e+03' broke the report.md table's reading."""
    from pytest_vdbench.report.format import fmt_rate

    assert [fmt_rate(x) for x in (1234.4, 99.94, 3.14159, 0.0123)] == ["1234", "99.9", "3.14", "0.0123"]
