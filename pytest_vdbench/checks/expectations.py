"""Pure checks of an output against a manifest's ``expect``: each returns the problems found."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_vdbench.manifest import Bound, Expect
from pytest_vdbench.runtime.host import format_bytes

__all__ = ["bound_problems", "determinism_problems", "output_problems", "requirement_problems"]


def output_problems(output: np.ndarray[Any, Any], expect: Expect) -> list[str]:
    """Shape, dtype, finiteness and value range of ``output``."""
    problems: list[str] = []
    if expect.shape is not None:
        want = expect.shape
        ok = len(want) == output.ndim and all(w is None or w == g for w, g in zip(want, output.shape, strict=False))
        if not ok:
            shown = "[" + ", ".join("*" if w is None else str(w) for w in want) + "]"
            problems.append(
                f"shape {list(output.shape)} does not match expect.shape {shown}; return the layout the manifest "
                f"declares (video: [frames, channels, height, width]) or correct expect.shape"
            )
    if expect.dtype is not None and output.dtype.name != expect.dtype:
        problems.append(
            f"dtype {output.dtype.name} is not expect.dtype {expect.dtype}; cast the output in generate() "
            f"(e.g. .astype(np.{expect.dtype})) or correct expect.dtype"
        )
    if output.size == 0:
        problems.append("output is empty")
        return problems
    floating = np.issubdtype(output.dtype, np.floating)
    finite = np.isfinite(output) if floating else np.ones(output.shape, dtype=bool)
    if expect.finite and floating and not finite.all():
        nan, inf = int(np.isnan(output).sum()), int(np.isinf(output).sum())
        problems.append(
            f"output has {nan} NaN and {inf} inf values out of {output.size}; the model diverged (look for "
            f"fp16 overflow, a division by zero or an untrained/corrupt checkpoint)"
        )
    if expect.range is not None:
        low, high = expect.range
        values = output[finite] if floating else output
        if values.size:
            vmin, vmax = float(values.min()), float(values.max())
            if vmin < low or vmax > high:
                outside = int(((values < low) | (values > high)).sum())
                problems.append(
                    f"values span [{vmin:.6g}, {vmax:.6g}], outside expect.range [{low:g}, {high:g}] "
                    f"({outside} of {values.size} values); scale/clamp the output to expect.range "
                    f"(video: [0, 1], e.g. (x + 1) / 2 for a [-1, 1] decoder) or correct expect.range"
                )
    return problems


def determinism_problems(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any], atol: float, seed: int | None) -> list[str]:
    """Two outputs for the same seed must match (exactly, or within ``atol``)."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return [
            f"same seed {seed} gave outputs of different shape/dtype: "
            f"{first.shape} {first.dtype} vs {second.shape} {second.dtype}"
        ]
    if atol == 0.0:
        equal = np.array_equal(first, second, equal_nan=np.issubdtype(first.dtype, np.floating))
        if equal:
            return []
    diff = np.abs(first.astype(np.float64) - second.astype(np.float64))
    diff = np.nan_to_num(diff, nan=np.inf)
    worst = float(diff.max()) if diff.size else 0.0
    if worst <= atol:
        return []
    differing = int((diff > atol).sum())
    return [
        f"same seed {seed} gave different outputs: max |diff| = {worst:.6g} in {differing} of {diff.size} values "
        f"(expect.determinism_atol = {atol:g}); seed every random generator the model uses and fix the thread count"
    ]


def requirement_problems(declared: dict[str, Any], resources: Any) -> list[str]:
    """The adapter's ``get_requirements()`` must fit inside the manifest's ``resources``."""
    problems: list[str] = []
    checks = (
        ("gpus", resources.gpus, str),
        ("gpu_memory", resources.gpu_memory, format_bytes),
        ("memory", resources.memory, format_bytes),
        ("cpus", resources.cpus, str),
    )
    for key, limit, fmt in checks:
        value = declared.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"get_requirements()[{key!r}] must be a non-negative number, got {value!r}")
            continue
        if key == "gpu_memory" and not resources.gpus:
            if value:
                problems.append(
                    f"adapter needs {format_bytes(value)} of GPU memory but the manifest gives no GPU (resources.gpus: 0)"
                )
            continue
        if value > limit:
            problems.append(
                f"adapter needs {key} = {fmt(value)} but the manifest's resources.{key} is {fmt(limit)}; "
                f"raise resources.{key} or lower what get_requirements() declares"
            )
    return problems


#: what a low score of a metric usually means, said with the failure
_LOW_MEANS = {
    "dynamic_degree": "the frames barely change: a constant or frozen video",
    "prompt_sensitivity": "different prompts give the same output: the prompt does not reach the model",
    "motion_smoothness": "consecutive frames jump: frames out of order or unrelated to each other",
    "temporal_flicker": "brightness flickers from frame to frame",
    "column_shapes": "the samples' column distributions are far from the data's",
    "column_pair_trends": "the samples lose the correlations between columns",
}


def bound_problems(scores: dict[str, float], bounds: dict[str, Bound]) -> list[str]:
    """Each metric named in ``expect.quality`` must lie within its bound."""
    problems: list[str] = []
    for name, bound in sorted(bounds.items()):
        if name not in scores:
            problems.append(f"quality metric {name!r} was not computed (available: {', '.join(sorted(scores))})")
            continue
        value = scores[name]
        if bound.min is not None and not value >= bound.min:
            means = f" ({_LOW_MEANS[name]})" if name in _LOW_MEANS else ""
            problems.append(f"{name} = {value:.4g} is below expect.quality.{name}.min = {bound.min:g}{means}")
        if bound.max is not None and not value <= bound.max:
            problems.append(f"{name} = {value:.4g} is above expect.quality.{name}.max = {bound.max:g}")
    return problems
