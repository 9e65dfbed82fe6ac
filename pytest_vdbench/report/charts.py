"""Inline SVG line charts for report.html: latency against throughput, and each model's resource timeline."""

from __future__ import annotations

from typing import Any

from pytest_vdbench.report.format import fmt_rate
from pytest_vdbench.runtime.host import format_bytes

__all__ = ["throughput_charts", "timeline_charts"]

WIDTH, HEIGHT, PAD = 420, 160, 36


def _scale(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return low, (high - low) or 1.0


def _points(xs: list[float], ys: list[float], y_range: list[float] | None = None, x_range: list[float] | None = None) -> str:
    """SVG polyline points; ``x_range``/``y_range``: the values the axes span (default the points'), shared by lines."""
    x0, xr = _scale(x_range or xs)
    y0, yr = _scale(y_range or ys)
    return " ".join(
        f"{PAD + (WIDTH - 2 * PAD) * (x - x0) / xr:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y - y0) / yr:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )


def throughput_charts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One chart per (model, case) with a load sweep: p50 and p99 latency against outputs per second."""
    charts = []
    for row in rows:
        for case, levels in sorted((row.get("throughput") or {}).items()):
            done = [lv for lv in levels if lv["requests"] and lv["latency_seconds"]["p50"] is not None]
            if not done:
                continue
            xs = [float(lv["throughput_per_second"]) for lv in done]
            both = [float(lv["latency_seconds"][q]) for q in ("p50", "p99") for lv in done] + [0.0]
            lines = [
                {"label": q, "points": _points(xs, [float(lv["latency_seconds"][q]) for lv in done], both)}
                for q in ("p50", "p99")
            ]
            labels = [
                f"x{lv['concurrency']}: {fmt_rate(lv['throughput_per_second'])}/s, "
                f"p50 {lv['latency_seconds']['p50'] * 1000:.3g} ms" + (f", busy {sum(lv['busy'].values())}" if lv["busy"] else "")
                for lv in done
            ]
            charts.append({"model": row["id"], "case": case, "lines": lines, "labels": labels, "levels": levels})
    return charts


def timeline_charts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One chart per model: memory over time (and CPU % where known) with its phase marks."""
    charts = []
    for row in rows:
        tl = row.get("timeline") or {}
        t, memory = tl.get("t") or [], tl.get("memory_bytes") or []
        if len(t) < 2:
            continue
        t0, tr = _scale(t)
        marks = [
            {"x": round(PAD + (WIDTH - 2 * PAD) * (m["t"] - t0) / tr, 1), "label": m["label"]}
            for m in tl.get("marks") or []
            if t0 <= m["t"] <= t0 + tr
        ]
        cpu = [(x, c) for x, c in zip(t, tl.get("cpu_percent") or [], strict=False) if c is not None]
        charts.append(
            {
                "model": row["id"],
                "memory": _points(t, [float(v) for v in memory], [0.0, float(max(memory))]),
                "cpu": _points([x for x, _ in cpu], [c for _, c in cpu], [0.0, max(100.0, *(c for _, c in cpu))], t)
                if len(cpu) > 1
                else "",
                "marks": marks,
                "peak": format_bytes(max(memory)),
                "span": f"{t[-1] - t[0]:.1f}s",
                "samples": tl.get("samples", len(t)),
            }
        )
    return charts
