"""Pure checks of an output against a manifest's ``expect``: each returns the problems found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_vdbench.manifest import Bound, Expect
from pytest_vdbench.runtime.host import format_bytes

if TYPE_CHECKING:
    from pytest_vdbench.checks.metrics import MetricRegistry

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


def bound_problems(
    scores: dict[str, float], bounds: dict[str, Bound], registry: MetricRegistry, not_computed: dict[str, str] | None = None
) -> list[str]:
    """Each metric named in ``expect.quality`` must lie within its bound (its registry entry says what a low score means)."""
    problems: list[str] = []
    for name, bound in sorted(bounds.items()):
        if name not in scores:
            why = (not_computed or {}).get(name)
            if why is not None:
                problems.append(f"quality metric {name!r} is bounded by expect.quality but was not computed: {why}")
            else:
                problems.append(f"quality metric {name!r} was not computed (available: {', '.join(sorted(scores))})")
            continue
        value = scores[name]
        info = registry.info(name)
        if bound.min is not None and not value >= bound.min:
            means = f" ({info.low_means})" if info is not None and info.low_means else ""
            problems.append(f"{name} = {value:.4g} is below expect.quality.{name}.min = {bound.min:g}{means}")
        if bound.max is not None and not value <= bound.max:
            problems.append(f"{name} = {value:.4g} is above expect.quality.{name}.max = {bound.max:g}")
    return problems
