"""Scores an output with the metrics of its modality (the metrics themselves are pure functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_vdbench.manifest import Case

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["contrast_prompt", "quality_scores"]


def contrast_prompt(prompt: str) -> str:
    """A different prompt for the prompt-sensitivity probe (deterministic, never equal)."""
    return f"{prompt[::-1]} | contrast" if prompt else "a contrast prompt"


def quality_scores(run: ModelRun, case: Case, output: np.ndarray[Any, Any]) -> dict[str, float]:
    """Metric name -> score for ``output``; may call the model again (prompt sensitivity)."""
    if run.spec.manifest.modality == "video":
        from pytest_vdbench.checks.metrics.video import prompt_sensitivity, video_report

        scores = dict(video_report(output))
        if case.prompt:
            other = run.client.generate(contrast_prompt(case.prompt), seed=case.seed, params=case.params).output
            scores["prompt_sensitivity"] = float(prompt_sensitivity(output, other))
        return scores
    from pytest_vdbench.checks.tabular import tabular_scores

    return tabular_scores(run, case, output)
