"""The terminal's ``vdbench summary``: one line per model, then the comparison's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_vdbench.report.format import fmt_seconds, headline_quality, regression_marks, verdict
from pytest_vdbench.report.rows import collect_rows, final_rows, regressed_models
from pytest_vdbench.report.state import state_of
from pytest_vdbench.runtime.host import format_bytes

if TYPE_CHECKING:
    from pytest_vdbench.session import VdbenchSession

__all__ = ["summary_lines"]


def _model_line(row: dict[str, Any]) -> str:
    if str(row["status"]).startswith("skipped"):
        return f"{row['id']:<24} {row['status']}"
    line = (
        f"{row['id']:<24} ready {fmt_seconds(row['startup_seconds']):>8}  "
        f"generate {fmt_seconds(row['generate_seconds_median']):>8}  "
        f"peak {format_bytes(row['peak_memory_bytes']):>10}  {headline_quality(row['quality'])}  "
        f"{verdict(row)}  {row['status']}"
    )
    marks = regression_marks(row)
    return f"{line}  [{marks}]" if marks else line


def _comparison_lines(session: VdbenchSession) -> list[str]:
    rec = state_of(session)
    if rec is None or rec.baseline is None or session.options.compare is None:
        return []
    regressed = regressed_models(rec)
    threshold = f"{session.options.regression_threshold:.0%}"
    if not regressed:
        return [f"vdbench: no regression beyond {threshold} against {session.options.compare}"]
    where = "; ".join(f"{m}: {', '.join(names)}" for m, names in regressed.items())
    lines = [f"vdbench: regressions beyond {threshold} against {session.options.compare}: {where}"]
    if session.options.fail_on_regression:
        lines.append("vdbench: exit status 1 because of these regressions (--vdbench-fail-on-regression)")
    return lines


def summary_lines(session: VdbenchSession) -> list[str]:
    """One line per model for the terminal: ready, generation median, peak memory, quality, verdict, status."""
    is_controller = session.role.reports
    rows = final_rows(session) if is_controller else collect_rows(session)
    lines = [_model_line(row) for row in rows]
    if is_controller:
        lines.extend(f"{model:<24} skipped: {reason}" for model, reason in sorted(session.skipped.items()))
        rec = state_of(session)
        for name, entry in sorted((rec.invalid_manifests if rec else {}).items()):
            lines.append(f"{name:<24} failed: invalid manifest, {len(entry['problems'])} problem(s): {entry['problems'][0]}")
    return lines + _comparison_lines(session)
