"""report.md: the seed-004 table plus timing statistics, failures and the comparison."""

from __future__ import annotations

from typing import Any

from pytest_vdbench.report.format import fmt_rate, fmt_seconds, fmt_value, headline_quality, md_cell, regression_marks, verdict
from pytest_vdbench.runtime.host import format_bytes

__all__ = ["markdown"]

_HEADER = [
    "| Model | Build | Image size | Startup | Peak memory | CPU | Execution (fit + generate) | p90 | Timing | Quality | Status |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


def _phases(phases: dict[str, float] | None) -> str:
    """`` (queue 3.1s, pull 0.0s, container 0.4s)`` after a Slurm model's startup; empty otherwise."""
    if not phases:
        return ""
    return " (" + ", ".join(f"{name} {fmt_seconds(seconds)}" for name, seconds in phases.items()) + ")"


def _table_row(r: dict[str, Any]) -> str:
    cpu = "n/a" if r["cpu_percent"] is None else f"{r['cpu_percent']:.0f}%"
    build = fmt_seconds(r["build_seconds"]) + (" (cached)" if r["build_cached"] else "")
    execution = fmt_seconds(r["generate_seconds_median"])
    if r.get("fit_seconds") is not None:
        execution = f"{fmt_seconds(r['fit_seconds'])} + {execution}"
    status = r["status"]
    marks = regression_marks(r)
    if marks:
        status += f" ({marks})"
    cells = [
        r["id"],
        build,
        format_bytes(r["image_size_bytes"]),
        fmt_seconds(r["startup_seconds"]) + _phases(r.get("startup_phases")),
        format_bytes(r["peak_memory_bytes"]),
        cpu,
        execution,
        fmt_seconds(r.get("generate_seconds_p90")),
        verdict(r),
        headline_quality(r["quality"]),
        status,
    ]
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def _comparison(doc: dict[str, Any]) -> list[str]:
    comparison = doc.get("comparison")
    if not comparison:
        return []
    out = ["", f"## Comparison with `{comparison['baseline']}` (threshold {comparison['threshold']:.0%})", ""]
    out += ["| Model | Figure | Before | After | Change | |", "|---|---|---|---|---|---|"]
    for r in doc["models"]:
        comp = r.get("comparison") or {}
        if comp.get("note") and not comp.get("deltas"):
            out.append(f"| {md_cell(r['id'])} | | | | | {md_cell(comp['note'])} |")
        for d in comp.get("deltas", []):
            flag = "**REGRESSION**" if d["regression"] else d["note"]
            change = f"{d['change']:+.1%}"
            if d.get("interval"):
                change += f" (95 % CI {d['interval'][0]:+.1%} .. {d['interval'][1]:+.1%})"
            out.append(
                f"| {md_cell(r['id'])} | {md_cell(d['metric'])} | {fmt_value(d['kind'], d['before'])} "
                f"| {fmt_value(d['kind'], d['after'])} | {change} | {md_cell(flag)} |"
            )
    out += [f"| {md_cell(model)} | | | | | gone: in the previous report only |" for model in comparison["gone"]]
    return out


def _timings(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "",
        "## Generation timings",
        "",
        "| Model | Case | Rounds | Median (round trip) | 95 % interval | Server time | Verdict |",
    ]
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        for case, s in (r.get("timings") or {}).get("generate", {}).items():
            ci = "n/a" if s.get("ci_low") is None else f"{fmt_seconds(s['ci_low'])} .. {fmt_seconds(s['ci_high'])}"
            if s.get("precision") is not None:
                ci += f" (±{100 * s['precision']:.1f} %)"
            out.append(
                f"| {md_cell(r['id'])} | {md_cell(case)} | {s['rounds']} | {fmt_seconds(s['median'])} | {ci} "
                f"| {fmt_seconds(s.get('server_median'))} | {s['verdict']} |"
            )
    return out if len(out) > 5 else []  # the heading, the table head: no row, no section


def _throughput(rows: list[dict[str, Any]]) -> list[str]:
    out = ["", "## Throughput", "", "| Model | Case | Concurrency | Outputs/s | p50 | p90 | p99 | Queue p50 | Busy |"]
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for case, levels in sorted((r.get("throughput") or {}).items()):
            for lv in levels:
                lat = lv["latency_seconds"]
                out.append(
                    f"| {md_cell(r['id'])} | {md_cell(case)} | {lv['concurrency']} | {fmt_rate(lv['throughput_per_second'])} "
                    f"| {fmt_seconds(lat['p50'])} | {fmt_seconds(lat['p90'])} | {fmt_seconds(lat['p99'])} "
                    f"| {fmt_seconds(lv['queue_p50_seconds'])} | {md_cell(lv['busy'] or 'none')} |"
                )
    return out if len(out) > 5 else []  # the heading, the table head: no row, no section


def _failures(rows: list[dict[str, Any]], invalid_manifests: list[dict[str, Any]]) -> list[str]:
    failed = [r for r in rows if r.get("failures")]
    if not failed and not invalid_manifests:
        return []
    out = ["", "## Failures", ""]
    for m in invalid_manifests:  # every problem: each is one line that names the file and the key
        out += [f"- **{md_cell(m['manifest'])}** `manifest`: {md_cell(problem)}" for problem in m["problems"]]
    for r in failed:
        for f in r["failures"]:
            first = f["message"].splitlines()[0] if f["message"] else ""
            out.append(f"- **{md_cell(r['id'])}** `{f['test']}`: {md_cell(first)}")
    return out


def _metric_containers(rows: list[dict[str, Any]]) -> list[str]:
    """Which metric containers scored each model, and every score not computed (with the reason)."""
    out: list[str] = []
    for r in rows:
        for mc in r.get("metric_containers") or []:
            meta = mc.get("metadata") or {}
            versions = ", ".join(f"{k} {v}" for k, v in sorted((meta.get("libraries") or {}).items()))
            state = f"skipped: {mc['skipped']}" if mc.get("skipped") else (versions or "no metadata")
            out.append(f"- **{md_cell(r['id'])}** scored by `{mc['name']}` ({md_cell(state)})")
            hashes = (meta.get("model") or {}).get("weights_sha256") or {}
            out += [f"  - weights `{name}` sha256 {digest}" for name, digest in sorted(hashes.items())]
        notes = {k: v for case_notes in (r.get("quality_notes_by_case") or {}).values() for k, v in case_notes.items()}
        out += [f"  - `{md_cell(name)}` not computed: {md_cell(note)}" for name, note in sorted(notes.items())]
    return ["", "## Metric containers and scores not computed", "", *out] if out else []


def _interrupted(doc: dict[str, Any]) -> list[str]:
    run = doc.get("run") or {}
    if run.get("status") != "interrupted":
        return []
    line = f"**Interrupted** (`{md_cell(run['interrupted_by'])}`): partial results, measured until the signal."
    if run["unfinished_models"]:
        line += " Unfinished: " + ", ".join(md_cell(m) for m in run["unfinished_models"]) + "."
    if run["not_started"]:
        line += " Never started: " + ", ".join(md_cell(m) for m in run["not_started"]) + "."
    return [line, ""]


def markdown(doc: dict[str, Any]) -> str:
    """The whole report.md for one report.json document."""
    rows = doc["models"]
    out = ["# vdbench report", "", *_interrupted(doc), *_HEADER, *(_table_row(r) for r in rows)]
    out += [f"| {md_cell(model)} | | | | | | | | | | skipped: {md_cell(why)} |" for model, why in doc["skipped"].items()]
    invalid_manifests = doc.get("invalid_manifests") or []
    out += [f"| {md_cell(m['manifest'])} | | | | | | | | | | {md_cell(m['status'])} |" for m in invalid_manifests]
    stats = doc["statistics"]
    out += [
        "",
        f"Timings: median round trip of the timed rounds (warmup excluded); rounds continue until the median's "
        f"95 % interval is within ±{100 * stats['precision']:g} % (at most {stats['max_duration_seconds']:g}s or "
        f"{stats['max_rounds']} rounds per case); VALID needs ≥ {stats['min_rounds']} rounds, "
        f"≥ {stats['min_duration_seconds']:g}s in total and that precision.",
    ]
    out += _timings(rows)
    out += _throughput(rows)
    invalid = [(r["id"], r["timing_reason"]) for r in rows if verdict(r) == "INVALID"]
    if invalid:
        out += ["", "## INVALID timings", ""] + [f"- **{md_cell(m)}**: {md_cell(reason)}" for m, reason in invalid]
    out += _comparison(doc)
    out += _metric_containers(rows)
    out += _failures(rows, invalid_manifests)
    return "\n".join(out) + "\n"
