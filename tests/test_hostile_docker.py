"""Hostile manifests against the real docker runtime: one bad model fails alone, the rest run.

Marked ``docker``: they skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import containers, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _engine() -> None:
    docker_or_skip()


def test_a_yaml_date_in_options_fails_that_model_at_once_and_the_next_model_runs(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    """Both models ask for every CPU of the host: a reservation leaked by the first blocks the second."""
    cpus = os.cpu_count() or 1
    bad = toy_manifest("a-dated", resources={"cpus": cpus, "memory": "512m"})
    good = toy_manifest("b-fine", resources={"cpus": cpus, "memory": "512m"})
    text = yaml.safe_dump(bad, sort_keys=False).replace("  fault: none\n", "  fault: none\n  since: 2024-01-01\n")
    assert "since: 2024-01-01" in text
    suite = write_suite(text, good, names=["a-dated", "b-fine"])
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker",
        "--vdbench-reserve-timeout", "60", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfEs",
        timeout=600,
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*a-dated*options.since: datetime.date(2024, 1, 1) (date) cannot be sent*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()  # the first test names it; the rest skip
    assert outcomes.get("passed") == 8 and "error" not in outcomes  # b-fine: 7; a-dated: test_build
    assert "resources did not free up" not in result.stdout.str()
    assert containers("a-dated", "b-fine") == []
