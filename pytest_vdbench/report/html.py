"""report.html: one self-contained page (Jinja2, autoescaped) with inline SVG charts and PNG frames.

Nothing is fetched when the page opens: styles, the sorting script, the charts and the frames
(read back from the GIFs ``media.py`` kept) are all inline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from pytest_vdbench.report.charts import HEIGHT, WIDTH, throughput_charts, timeline_charts
from pytest_vdbench.report.format import fmt_rate
from pytest_vdbench.runtime.host import format_bytes

__all__ = ["bar_chart", "render_html"]

CHART_WIDTH = 360  # pixels of the longest bar


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("pytest_vdbench.report", "templates"), autoescape=True, undefined=StrictUndefined)
    env.filters["seconds"] = _seconds
    env.filters["bytes"] = format_bytes
    env.filters["rate"] = fmt_rate
    env.filters["score"] = lambda v: "n/a" if v is None else f"{v:.4g}"
    env.filters["percent"] = lambda v: "n/a" if v is None else f"{v:+.1%}"
    return env


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}s" if value >= 0.1 else f"{value * 1000:.2f}ms"


def bar_chart(title: str, rows: list[dict[str, Any]], key: str, fmt: str) -> dict[str, Any]:
    """Bars for one figure per model; models without the figure are named in ``missing``."""
    values = [(str(r["id"]), float(r[key])) for r in rows if isinstance(r.get(key), int | float)]
    top = max((v for _, v in values), default=0.0) or 1.0
    bars = [
        {
            "label": label,
            "value": value,
            "text": _seconds(value) if fmt == "seconds" else format_bytes(value),
            "width": round(max(1.0, CHART_WIDTH * value / top), 1),
        }
        for label, value in values
    ]
    missing = [str(r["id"]) for r in rows if not isinstance(r.get(key), int | float)]
    return {"title": title, "key": key, "bars": bars, "missing": missing, "height": 16 + 24 * len(bars)}


def _quality_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    # a metric container's uncomputed scores get a column too: their cell says why (never a number)
    notes = {r["id"]: r.get("quality_notes_by_case") or {} for r in rows}
    metrics = sorted(
        {m for r in rows for scores in (r.get("quality_by_case") or {}).values() for m in scores}
        | {m for by_case in notes.values() for case_notes in by_case.values() for m in case_notes}
    )
    table = [
        {
            "model": r["id"],
            "case": case,
            "scores": [scores.get(m) for m in metrics],
            "notes": [notes[r["id"]].get(case, {}).get(m) for m in metrics],
        }
        for r in rows
        for case, scores in sorted((r.get("quality_by_case") or {}).items())
    ]
    return metrics, table


def render_html(doc: dict[str, Any], directory: Path) -> str:
    """The page for a report document; frames come from ``directory/media``."""
    from pytest_vdbench.report.format import headline_quality, regression_marks, verdict
    from pytest_vdbench.report.media import frame_strip

    rows: list[dict[str, Any]] = [{"comparison": None, **r} for r in doc["models"]]
    strips = []
    for row in rows:
        for item in row.get("media") or []:
            frames = frame_strip(directory / item["gif"])
            if frames:
                strips.append({"model": row["id"], **item, "frames": frames})
    metrics, quality = _quality_table(rows)
    charts = [
        bar_chart("Startup (create → ready)", rows, "startup_seconds", "seconds"),
        bar_chart("Generation time (median round trip of the timed rounds)", rows, "generate_seconds_median", "seconds"),
        bar_chart("Peak memory", rows, "peak_memory_bytes", "bytes"),
    ]
    from pytest_vdbench.store.history import TREND_FIGURES, TREND_RUNS, trend_svg

    trend_rows = [
        {"model": model, "runs": len(points), "svgs": [trend_svg(points, f) for f in TREND_FIGURES]}
        for model, points in sorted((doc.get("trends") or {}).items())
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        doc=doc,
        rows=rows,
        comparison=doc.get("comparison"),
        skipped_rows=[r for r in rows if str(r["status"]).startswith("skipped")],
        charts=charts,
        chart_width=CHART_WIDTH,
        throughput=throughput_charts(rows),
        timelines=timeline_charts(rows),
        line_size=(WIDTH, HEIGHT),
        strips=strips,
        metrics=metrics,
        quality=quality,
        trends=trend_rows,
        trend_runs=TREND_RUNS,
        headline_quality=headline_quality,
        verdict=verdict,
        regression_marks=regression_marks,
        pretty=lambda value: json.dumps(value, indent=2, default=str, sort_keys=True),
    )
