"""Built-in video metrics carry no VBench name they do not compute; old names keep working, with a warning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import toy_manifest
from pytest_vdbench.checks.metrics import builtin_registry
from pytest_vdbench.manifest import ManifestError, load_manifest
from pytest_vdbench.manifest.validate import check_specs
from pytest_vdbench.runtime.cogyaml import cog_yaml_problems


def _old_names(**quality: dict[str, float]) -> dict[str, object]:
    doc = toy_manifest(rounds=1)
    doc["expect"] = {**doc["expect"], "quality": quality}  # type: ignore[dict-item]
    return doc


def test_an_old_name_warns_naming_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(_old_names(dynamic_degree={"min": 0.001})))
    specs = load_manifest(path, tmp_path)
    assert "motion" in specs[0].manifest.expect.quality and "dynamic_degree" not in specs[0].manifest.expect.quality
    (problem,) = [p for p in check_specs(specs, builtin_registry(), cog_check=cog_yaml_problems) if p.code == "renamed-metric"]
    assert problem.severity == "warning" and problem.key == "expect.quality.dynamic_degree"
    assert problem.message.startswith("'dynamic_degree' was renamed to 'motion': rename the key to expect.quality.motion")
    assert "vbench.dynamic_degree with --vdbench-metrics=vbench" in problem.message


def test_old_and_new_name_together_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(_old_names(temporal_flicker={"min": 0.1}, flicker={"min": 0.2})))
    with pytest.raises(ManifestError, match="'temporal_flicker' and 'flicker' both given"):
        load_manifest(path, tmp_path)


def test_an_old_name_still_bounds_the_renamed_metric(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(_old_names(motion_smoothness={"min": 0.9999}))
    result = pytester.runpytest(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-k",
        "quality",
        "-W",
        "default::pytest.PytestWarning",
    )
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "smoothness = 0.9* is below expect.quality.smoothness.min = 0.9999*",
            "*expect.quality.motion_smoothness: warning: 'motion_smoothness' was renamed to 'smoothness'*",
        ]
    )
