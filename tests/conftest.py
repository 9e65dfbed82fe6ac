"""Fixtures for the plugin's tests: suites of toy-model manifests and inner pytest runs over them.

Plain helpers (``toy_manifest``, ``docker_or_skip``, ``containers``) live in ``helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import RunVdbench

#: the flags every inner vdbench run of these tests shares: no timing noise, no cache unless asked
QUIET = ("--benchmark-disable", "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning")


@pytest.fixture
def write_suite(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write manifests (dicts or raw YAML text) into ``<pytester>/suite/`` and return that folder."""

    def write(*manifests: dict[str, Any] | str, names: list[str] | None = None) -> Path:
        suite = pytester.path / "suite"
        suite.mkdir(exist_ok=True)
        for i, manifest in enumerate(manifests):
            text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False)
            name = names[i] if names else (manifest["name"] if isinstance(manifest, dict) else f"m{i}")
            (suite / f"{name}.yaml").write_text(text)
        return suite

    return write


@pytest.fixture
def run_vdbench(pytester: pytest.Pytester) -> RunVdbench:
    """An inner ``pytest --vdbench`` in a subprocess (``--vdbench-suite SUITE``, the process runtime by default)."""

    def run(*args: str | Path, suite: Path | None = None, runtime: str | None = "process") -> pytest.RunResult:
        flags: list[str | Path] = ["--vdbench", *QUIET]
        if suite is not None:
            flags += ["--vdbench-suite", suite]
        if runtime is not None:
            flags += ["--vdbench-runtime", runtime]
        return pytester.runpytest_subprocess(*flags, *args)

    return run
