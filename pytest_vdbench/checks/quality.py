"""Scores an output with the registered metrics of its modality (the metrics are pure functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from pytest_vdbench.checks.metrics import MetricRegistry, ScoreContext, builtin_registry
from pytest_vdbench.manifest import Case

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["METRICS_KEY", "metric_registry", "quality_scores"]

#: the run's metric registry (built-ins + ``pytest_vdbench_add_metrics`` implementations)
METRICS_KEY = pytest.StashKey[MetricRegistry]()


def metric_registry(config: pytest.Config) -> MetricRegistry:
    """The registry the plugin built at configure time (the built-ins alone outside a vdbench run)."""
    registry = config.stash.get(METRICS_KEY, None)
    if registry is None:
        registry = config.stash[METRICS_KEY] = builtin_registry()
    return registry


def quality_scores(
    run: ModelRun, case: Case, output: np.ndarray[Any, Any], registry: MetricRegistry
) -> tuple[dict[str, float], dict[str, str]]:
    """Metric name -> score for ``output`` and metric name -> why it was not computed here.

    A scorer may ask the model for another generation (prompt sensitivity): it goes through the
    run, under the case's output limit, and is recorded apart from the timed rounds.
    """
    modality = run.spec.manifest.modality
    ctx = ScoreContext(case=case, output=output, generate=lambda prompt: run.generate_extra(case, prompt).output)
    if modality == "tabular":
        ctx.extra["data"] = run.tabular_data(case)
    return registry.score(modality, ctx)
