"""How figures read in the terminal, report.md and report.html (one wording everywhere)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pytest_vdbench.runtime.host import format_bytes

__all__ = ["fmt_rate", "fmt_seconds", "fmt_value", "headline_quality", "md_cell", "regression_marks", "verdict"]


def fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s" if value >= 0.1 else f"{value * 1000:.1f}ms"


def fmt_rate(value: float) -> str:
    """Outputs per second, three significant digits and never an exponent (1234, not 1.23e+03)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def fmt_value(kind: str, value: float) -> str:
    if kind == "timing":
        return fmt_seconds(value)
    if kind == "memory":
        return format_bytes(value)
    return f"{value:.4g}"


def md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def headline_quality(scores: Mapping[str, float]) -> str:
    """The scores a reader compares first (full scores are in report.json)."""
    if "column_shapes" in scores:
        text = f"shapes {scores['column_shapes']:.2f}"
        if "uniform_column_shapes" in scores:
            text += f" (noise {scores['uniform_column_shapes']:.2f})"
        if "column_pair_trends" in scores:
            text += f", trends {scores['column_pair_trends']:.2f}"
        if "tstr_ratio" in scores:
            text += f", TSTR/TRTR {scores['tstr_ratio']:.2f}"
        return text
    return ", ".join(f"{k} {scores[k]:.3g}" for k in _headline() if k in scores) or "n/a"


@functools.cache
def _headline() -> tuple[str, ...]:
    from pytest_vdbench.checks.metrics import builtin_registry

    return tuple(builtin_registry().headline())


def verdict(row: Mapping[str, Any]) -> str:
    if not row.get("timings", {}).get("generate"):
        return "n/a"
    return "VALID" if row.get("timing_valid") else "INVALID"


def regression_marks(row: Mapping[str, Any]) -> str:
    comparison = row.get("comparison")
    if not comparison:
        return ""
    if comparison["regressions"]:
        return "REGRESSED: " + ", ".join(comparison["regressions"])
    return str(comparison["note"] or "no regression")
