"""A metric from outside the package is one hook implementation: validate, test_quality, compare and the report see it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import toy_manifest

PLUGIN = """
import numpy as np
from pytest_vdbench.checks.metrics import MetricInfo


class Brightness:
    metrics = (MetricInfo("mean_brightness", "video", (0, 1), "higher", "the video is too dark"),)

    def unavailable(self):
        return None

    def score(self, ctx):
        return {"mean_brightness": float(np.asarray(ctx.output, dtype=np.float64).mean())}


def pytest_vdbench_add_metrics(registry):
    registry.add(Brightness())
"""


def _run(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=process", "-p", "no:cacheprovider", "--benchmark-disable",
        "-rfEs", *extra,
    )  # fmt: skip


def _bounded(minimum: float) -> dict[str, object]:
    doc = toy_manifest("bright")
    doc["expect"]["quality"] = {"mean_brightness": {"min": minimum}}  # type: ignore[index]
    return doc


def test_a_plugin_metric_is_scored_bounded_and_reported(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    pytester.makeconftest(PLUGIN)
    suite = write_suite(_bounded(0.0))
    result = _run(pytester, suite, "--vdbench-report=rep", "-k", "test_quality")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes().get("deselected", 0))
    row = json.loads((pytester.path / "rep" / "report.json").read_text())["models"][0]
    assert 0 < row["quality_by_case"]["fox"]["mean_brightness"] < 1


def test_a_plugin_metric_below_its_bound_fails_test_quality_saying_why(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    pytester.makeconftest(PLUGIN)
    suite = write_suite(_bounded(0.99))
    result = _run(pytester, suite, "-k", "test_quality")
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes().get("deselected", 0))
    want = "*mean_brightness = * is below expect.quality.mean_brightness.min = 0.99 (the video is too dark)"
    result.stdout.fnmatch_lines([want])


def test_without_the_plugin_the_metric_is_an_unknown_name(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(_bounded(0.0))
    result = _run(pytester, suite)
    result.assert_outcomes(failed=1)  # the manifest's one test
    result.stdout.fnmatch_lines(["*expect.quality.mean_brightness: no video metric 'mean_brightness'*"])
