"""Run results as a terminal summary and report files (report.json, report.md)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_vdbench.host import format_bytes

if TYPE_CHECKING:
    from pytest_vdbench.session import VdbenchSession

__all__ = ["collect_rows", "summary_lines", "write_reports"]

SCHEMA_VERSION = 1


def collect_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """One row per model run: build, startup, memory, CPU, latency, quality, status.

    Under pytest-xdist the controller has no runs of its own: the workers' rows are merged in.
    """
    rows: list[dict[str, Any]] = list(session.worker_rows)
    for run_id, run in sorted(session.runs.items()):
        usage = run.usage()
        lat = [run.median_latency(c) for c in run.spec.manifest.cases]
        lat_known = [x for x in lat if x is not None]
        scores: dict[str, float] = {}
        for result in run.cases.values():
            for key, value in result.metrics.items():
                scores.setdefault(key, value)
        errors = [r.error for r in run.cases.values() if r.error]
        status = "ok" if run.skip_reason is None else f"skipped: {run.skip_reason}"
        if run.build_error:
            status, errors = "build failed", [run.build_error, *errors]
        elif run.startup_error is not None:
            status, errors = "not ready", [run.startup_error.reason, *errors]
        elif usage is not None and usage.oom_killed:
            status = "OOM-killed"
        elif errors:
            status = "errors"
        build = run.build
        rows.append(
            {
                "model": run.spec.name,
                "variant": run.spec.variant,
                "id": run_id,
                "modality": run.spec.manifest.modality,
                "runtime": run.runtime.name,
                "manifest": str(run.spec.path),
                "manifest_sha256": run.spec.manifest_sha256,
                "image": build.image if build else None,
                "image_id": build.image_id if build else None,
                "image_size_bytes": build.size_bytes if build else None,
                "build_seconds": build.build_seconds if build else None,
                "build_cached": build.cached if build else None,
                "startup_seconds": run.instance.startup_seconds if run.instance is not None else None,
                "generate_seconds_median": max(lat_known) if lat_known else None,
                "fit_seconds": sum(f for f in (r.fit_seconds for r in run.cases.values()) if f is not None) or None,
                "peak_memory_bytes": usage.peak_memory_bytes if usage else None,
                "mean_memory_bytes": usage.mean_memory_bytes if usage else None,
                "cpu_percent": usage.cpu_percent if usage else None,
                "oom_killed": usage.oom_killed if usage else None,
                "quality": scores,
                "metadata": run.metadata,
                "status": status,
                "errors": errors,
            }
        )
    return sorted(rows, key=lambda r: str(r["id"]))


def headline_quality(scores: dict[str, float]) -> str:
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
    keys = ("temporal_flicker", "motion_smoothness", "dynamic_degree", "prompt_sensitivity")
    return ", ".join(f"{k} {scores[k]:.3g}" for k in keys if k in scores) or "n/a"


def _fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def summary_lines(session: VdbenchSession) -> list[str]:
    lines = []
    for row in collect_rows(session):
        cpu = "n/a" if row["cpu_percent"] is None else f"{row['cpu_percent']:.0f}%"
        lines.append(
            f"{row['id']:<28} ready {_fmt_s(row['startup_seconds']):>8}  generate {_fmt_s(row['generate_seconds_median']):>8}  "
            f"peak {format_bytes(row['peak_memory_bytes']):>10}  cpu {cpu:>5}  {row['status']}"
        )
    return lines


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_reports(session: VdbenchSession, directory: Path) -> None:
    """Write report.json (versioned schema) and report.md (the seed-004 table) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = collect_rows(session)
    host = session.host
    doc = {
        "schema_version": SCHEMA_VERSION,
        "host": {
            "cpus": host.cpus,
            "memory_bytes": host.memory_total,
            "gpus": [g.__dict__ for g in host.gpus],
            "driver": host.driver,
        },
        "models": rows,
        "skipped": dict(sorted(session.skipped.items())),
    }
    _atomic_write(directory / "report.json", json.dumps(doc, indent=2, default=str))
    header = (
        "| Model | Build | Image size | Startup | Peak memory | CPU | Execution (fit + generate) | Quality | Status |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for r in rows:
        cpu = "n/a" if r["cpu_percent"] is None else f"{r['cpu_percent']:.0f}%"
        build = _fmt_s(r["build_seconds"]) + (" (cached)" if r["build_cached"] else "")
        execution = _fmt_s(r["generate_seconds_median"])
        if r.get("fit_seconds") is not None:
            execution = f"{_fmt_s(r['fit_seconds'])} + {execution}"
        body += (
            f"| {r['id']} | {build} | {format_bytes(r['image_size_bytes'])} | {_fmt_s(r['startup_seconds'])} "
            f"| {format_bytes(r['peak_memory_bytes'])} | {cpu} | {execution} | {headline_quality(r['quality'])} "
            f"| {r['status']} |\n"
        )
    for spec_id, reason in sorted(session.skipped.items()):
        body += f"| {spec_id} | | | | | | | | skipped: {reason} |\n"
    _atomic_write(directory / "report.md", "# vdbench report\n\n" + header + body)
