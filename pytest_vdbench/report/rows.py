"""Every model's row for the whole run: this process's runs, the workers' rows, the comparison."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pytest_vdbench.report.row import build_row
from pytest_vdbench.report.state import ReportState, state_of

if TYPE_CHECKING:
    from pytest_vdbench.session import VdbenchSession

__all__ = ["collect_rows", "final_rows", "regressed_models"]


def collect_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """One row per model run; under pytest-xdist the controller merges in the workers' rows."""
    rec = state_of(session)
    rows: list[dict[str, Any]] = list(rec.worker_rows) if rec else []
    rows.extend(dict(build_row(session, run_id, run, rec)) for run_id, run in sorted(session.runs.items()))
    return sorted(rows, key=lambda r: str(r["id"]))


def final_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """The controller's rows with the comparison attached; computed once at session end."""
    rec = state_of(session)
    if rec is not None and rec.rows is not None:
        return rec.rows
    rows: list[dict[str, Any]] = json.loads(json.dumps(collect_rows(session), default=str))  # plain JSON, like shipped rows
    from pytest_vdbench.store.recorder import annotate_rows

    annotate_rows(session, rows)  # what storing found (output drift)
    if rec is not None:
        if rec.baseline is not None:
            from pytest_vdbench.checks.quality import metric_registry
            from pytest_vdbench.report.compare import compare_rows

            directions = metric_registry(session.config).directions()
            rec.comparison = compare_rows(rec.baseline["models"], rows, session.options.regression_threshold, directions)
            for row in rows:
                row["comparison"] = rec.comparison[row["id"]].as_dict()
        rec.rows = rows
    return rows


def regressed_models(rec: ReportState) -> dict[str, list[str]]:
    """Model id -> the names of its regressed figures (models without regressions left out)."""
    if rec.comparison is None:
        return {}
    return {m: [d.metric for d in c.regressions] for m, c in sorted(rec.comparison.items()) if c.regressions}
