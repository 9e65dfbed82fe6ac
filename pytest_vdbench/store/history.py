"""Reading the store back: ``vdbench history``, report.html's trend charts, and store baselines for --vdbench-compare."""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vdbench.store import Store

if TYPE_CHECKING:
    from pytest_vdbench.session import VdbenchSession
    from pytest_vdbench.store.recorder import StoreRecorder

__all__ = ["FIGURES", "format_history", "store_baseline", "trend_svg", "trends"]

#: history's figures: column -> label
FIGURES = {
    "startup_seconds": "startup",
    "generate_seconds_median": "generate",
    "peak_memory_bytes": "peak_memory",
    "headline_quality": "quality",
}
TREND_RUNS = 10
TREND_FIGURES = ("startup", "generate", "peak_memory", "quality")


def store_baseline(session: VdbenchSession, ref: str, schema_version: int) -> dict[str, Any]:
    """A report.json-like document from a stored run (``last``: the newest run with models; ``run:ID``)."""
    from pytest_vdbench.store.recorder import store_recorder

    rec = store_recorder(session)
    store = rec.store if rec is not None else None
    if store is None:
        raise pytest.UsageError(f"--vdbench-compare {ref}: needs the results store; drop --vdbench-store=none")
    if ref == "last":
        info = next((r for r in store.list_runs(50) if r["id"] != session.testrun and store.run_models(r["id"])), None)
    else:
        info = store.run_info(ref.removeprefix("run:"))
    if info is None:
        known = ", ".join(r["id"] for r in store.list_runs(5)) or "none stored"
        raise pytest.UsageError(f"--vdbench-compare {ref}: no such run with results in {store.url} (newest runs: {known})")
    rows = [m.row for m in store.run_models(info["id"])]
    # rows stored before the report carried its schema are version 2 (medians of the server's time, no rounds)
    older = sorted({int(r.get("report_schema", 2)) for r in rows} - {schema_version})
    if older:
        raise pytest.UsageError(
            f"--vdbench-compare {ref}: run {info['id']} stored its results with report schema version {older[0]}, "
            f"this pytest-vdbench reads version {schema_version} (timings: round trips of adaptive rounds); "
            "re-run the baseline with this version, then compare with it"
        )
    return {"schema_version": schema_version, "models": rows, "environment": {"testrun": info["id"]}}


def trends(recorder: StoreRecorder, model_ids: list[str], last: int = TREND_RUNS) -> dict[str, list[dict[str, Any]]]:
    """Model id -> the newest ``last`` stored figures on this host class, oldest first."""
    from pytest_vdbench.store.keys import host_class

    assert recorder.store is not None
    hc = host_class(recorder.session.host, recorder.runtime_name)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in recorder.store.history(model_ids, last, host_class=hc):
        point = {"run": r["run_id"], "at": r["measured_at"], **{label: r[col] for col, label in FIGURES.items()}}
        out.setdefault(r["model_id"], []).append(point)
    return out


def trend_svg(points: list[dict[str, Any]], figure: str, width: int = 120, height: int = 28) -> str:
    """A sparkline (SVG markup) of one figure over runs; empty when fewer than two values."""
    values = [(i, float(p[figure])) for i, p in enumerate(points) if isinstance(p.get(figure), int | float)]
    if len(values) < 2:
        return ""
    lo, hi = min(v for _, v in values), max(v for _, v in values)
    span = (hi - lo) or 1.0
    step = (width - 4) / max(1, len(points) - 1)
    xy = " ".join(f"{2 + i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in values)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" height="{height}" role="img" '
        f'aria-label="{figure} over {len(values)} runs"><polyline fill="none" stroke="currentColor" points="{xy}"/>'
        f"<title>{figure}: {values[0][1]:.4g} → {values[-1][1]:.4g} over {len(values)} runs</title></svg>"
    )


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def history_rows(store: Store, models: list[str], metric: str | None, last: int) -> list[dict[str, Any]]:
    out = []
    for r in store.history(models, last):
        row: dict[str, Any] = {"model": r["model_id"], "run": r["run_id"], "when": _when(r["measured_at"]), "status": r["status"]}
        if metric is None:
            row.update({label: r[col] for col, label in FIGURES.items()})
        else:
            row[metric] = _metric(r, metric)
        out.append(row)
    return out


def _metric(r: dict[str, Any], metric: str) -> Any:
    if metric in FIGURES.values():
        return r[next(c for c, label in FIGURES.items() if label == metric)]
    if metric in r and metric != "row":
        return r[metric]
    row = r["row"] or {}
    return row.get(metric, (row.get("quality") or {}).get(metric))


def format_history(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if not rows:
        return "" if fmt == "csv" else "no stored results match"
    keys = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
