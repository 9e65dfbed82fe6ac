"""report.json (the versioned document everything else renders) and the three files, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_vdbench.report.rows import final_rows, regressed_models
from pytest_vdbench.report.state import SCHEMA_VERSION, state_of

if TYPE_CHECKING:
    from pytest_vdbench.report.state import ReportState
    from pytest_vdbench.session import VdbenchSession

__all__ = ["report_document", "write_reports"]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the report from a CI artifact server
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _run_state(rows: list[dict[str, Any]], rec: ReportState | None) -> dict[str, Any]:
    """Whether the run ended or was interrupted (Ctrl-C, SIGTERM), and which models it left unfinished."""
    if rec is None or rec.interrupted is None:
        return {"status": "finished", "interrupted_by": None, "unfinished_models": [], "not_started": []}
    have = {str(r["id"]) for r in rows}
    return {
        "status": "interrupted",
        "interrupted_by": rec.interrupted,
        "unfinished_models": sorted(str(r["id"]) for r in rows if r["status"] == "interrupted"),
        "not_started": sorted(m for m in rec.tests if m not in have and rec.unfinished(m)),
    }


def report_document(session: VdbenchSession) -> dict[str, Any]:
    """The report.json document (schema ``SCHEMA_VERSION``, documented in the README)."""
    from pytest_vdbench.report.provenance import environment

    rows = final_rows(session)
    host = session.host
    rec = state_of(session)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "host": {
            "cpus": host.cpus,
            "memory_bytes": host.memory_total,
            "gpus": [g.__dict__ for g in host.gpus],
            "driver": host.driver,
        },
        "environment": environment(session),
        "statistics": {
            "min_rounds": session.options.min_rounds,
            "min_duration_seconds": session.options.min_duration,
            "max_duration_seconds": session.options.max_duration,
            "max_rounds": session.options.max_rounds,
            "precision": session.options.precision,
            "warmup": "each case's warmup rounds run first and are excluded; test_generate's adaptive rounds are timed",
            "headline": "round trip (request to decoded output); the server's own time is server_median",
        },
        "run": _run_state(rows, rec),
        "models": rows,
        "skipped": dict(sorted(session.skipped.items())),
        "invalid_manifests": sorted(rec.invalid_manifests.values(), key=lambda m: str(m["manifest"])) if rec else [],
    }
    if rec is not None and rec.baseline is not None and rec.comparison is not None:
        doc["comparison"] = {
            "baseline": str(session.options.compare),
            "baseline_testrun": (rec.baseline.get("environment") or {}).get("testrun"),
            "threshold": session.options.regression_threshold,
            "regressed_models": regressed_models(rec),
            "gone": sorted(m for m, c in rec.comparison.items() if c.note.startswith("gone")),
        }
    from pytest_vdbench.store.recorder import store_recorder

    store = store_recorder(session)
    if store is not None and store.store is not None:
        from pytest_vdbench.store.history import trends

        doc["trends"] = trends(store, [str(r["id"]) for r in rows])
    return doc


def write_reports(session: VdbenchSession, directory: Path) -> None:
    """Write report.json (versioned schema), report.md (the seed-004 table) and report.html atomically."""
    from pytest_vdbench.report.html import render_html
    from pytest_vdbench.report.markdown import markdown

    directory.mkdir(parents=True, exist_ok=True)
    doc = report_document(session)
    _atomic_write(directory / "report.json", json.dumps(doc, indent=2, default=str))
    _atomic_write(directory / "report.md", markdown(doc))
    _atomic_write(directory / "report.html", render_html(doc, directory))
