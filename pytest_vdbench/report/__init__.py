"""Run results as a terminal summary and report files (report.json, report.md, report.html).

``ReportRecorder`` (registered by the session) watches the generated tests: their failures with
messages, and the last log lines of each model before its container goes away. ``collect_rows``
turns every ``ModelRun`` into one row (under pytest-xdist each worker ships its rows to the
controller, which writes the files).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vdbench.report.stats import summarize
from pytest_vdbench.report.timings import timed_latencies
from pytest_vdbench.runtime.host import format_bytes

if TYPE_CHECKING:
    from pytest_vdbench.report.compare import ModelComparison
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.session import VdbenchSession

__all__ = ["SCHEMA_VERSION", "ReportRecorder", "collect_rows", "summary_lines", "write_reports"]

#: 2: timings with statistics and verdicts, failures, log tails, provenance, environment, comparison
SCHEMA_VERSION = 2
LOG_TAIL_LINES = 40
MESSAGE_LIMIT = 4000

RECORDER_KEY = pytest.StashKey["ReportRecorder"]()


class ReportRecorder:
    """Hooks that gather what the report needs beyond ``ModelRun``; also owns the comparison."""

    def __init__(self, session: VdbenchSession) -> None:
        self.session = session
        self.model_of: dict[str, str] = {}  # test nodeid -> model id (generated tests only)
        self.failures: dict[str, list[dict[str, str]]] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.log_tails: dict[str, str] = {}
        self.baseline: dict[str, Any] | None = None
        self.comparison: dict[str, ModelComparison] | None = None
        self.rows: list[dict[str, Any]] | None = None  # the controller's final rows, once computed
        options = session.options
        if options.compare is not None and not hasattr(session.config, "workerinput"):
            from pytest_vdbench.report.compare import load_baseline

            self.baseline = load_baseline(options.compare, SCHEMA_VERSION)
        session.config.stash[RECORDER_KEY] = self

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.pluginmanager.unregister(self)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from pytest_vdbench.collect import VariantModule

        for item in items:
            if isinstance(item.parent, VariantModule):
                self.model_of[item.nodeid] = item.parent.spec.id

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        # the model's instance stops in this teardown when its module ends: keep its last log lines first
        model = self.model_of.get(item.nodeid)
        if model is not None and (nextitem is None or nextitem.parent is not item.parent):
            self._keep_logs(self.session.runs.get(model))
        return (yield)

    def _keep_logs(self, run: ModelRun | None) -> None:
        if run is None:
            return
        tail = ""
        if run.instance is not None and run.final_usage is None:
            tail = run.logs(LOG_TAIL_LINES)
        elif run.startup_error is not None:
            tail = "\n".join(run.startup_error.logs.splitlines()[-LOG_TAIL_LINES:])
        if tail:
            self.log_tails[run.spec.id] = tail

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        model = self.model_of.get(report.nodeid)
        if model is None:  # the xdist controller maps nothing: workers ship their own rows
            return
        counts = self.outcomes.setdefault(model, {"passed": 0, "failed": 0, "skipped": 0})
        if report.failed:
            counts["failed"] += 1
            text = report.longreprtext.strip()
            if len(text) > MESSAGE_LIMIT:
                text = text[:MESSAGE_LIMIT] + f"\n… ({len(text) - MESSAGE_LIMIT} more characters)"
            test = report.nodeid.split("::")[-1].removesuffix(f"@{model}")  # xdist's loadgroup suffix
            self.failures.setdefault(model, []).append({"test": test, "phase": report.when or "call", "message": text})
        elif report.when == "call" and report.passed:
            counts["passed"] += 1
        elif report.skipped:
            counts["skipped"] += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        for run in self.session.runs.values():  # models whose module teardown never came (interrupts)
            if run.spec.id not in self.log_tails:
                self._keep_logs(run)

    @pytest.hookimpl(trylast=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_exitstatus(self, session: pytest.Session) -> None:
        """Controller: --vdbench-fail-on-regression turns a regression into a failing exit status."""
        if hasattr(session.config, "workerinput") or self.baseline is None:
            return
        final_rows(self.session)
        if self.session.options.fail_on_regression and regressed_models(self) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def recorder(session: VdbenchSession) -> ReportRecorder | None:
    return session.config.stash.get(RECORDER_KEY, None)


def _case_stats(run: ModelRun, opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistics of each case's timed generation rounds (warmup excluded) and of its fit."""
    m = run.spec.manifest
    generate: dict[str, Any] = {}
    fit: dict[str, Any] = {}
    for case in m.cases:
        result = run.cases.get(case.id)
        if result is None:
            continue
        if result.latencies:
            samples = timed_latencies(result.latencies, m.warmup_rounds)
            generate[case.id] = summarize(samples, warmup_rounds=m.warmup_rounds, what=f"generate[{case.id}]", **opts).as_dict()
        if result.fit_seconds is not None:
            fit[case.id] = summarize([result.fit_seconds], what=f"fit[{case.id}]", **opts).as_dict()
    return generate, fit


def _row(session: VdbenchSession, run_id: str, run: ModelRun, rec: ReportRecorder | None) -> dict[str, Any]:
    from pytest_vdbench.report.provenance import run_provenance

    opts: dict[str, Any] = {"min_rounds": session.options.min_rounds, "min_duration": session.options.min_duration}
    usage = run.usage()
    generate, fit = _case_stats(run, opts)
    startup = summarize([run.instance.startup_seconds], what="startup", **opts).as_dict() if run.instance is not None else None
    quality_by_case = {case_id: dict(r.metrics) for case_id, r in sorted(run.cases.items()) if r.metrics}
    scores: dict[str, float] = {}
    for metrics in quality_by_case.values():
        for key, value in metrics.items():
            scores.setdefault(key, value)
    failures = list(rec.failures.get(run_id, [])) if rec else []
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
    elif failures:
        status = "failed"
    headline = max(generate.items(), key=lambda kv: kv[1]["median"] or 0.0, default=None)
    invalid = [s["reason"] for s in generate.values() if not s["valid"]]
    build = run.build
    media = [
        {"case": case.id, "gif": f"media/{run.spec.id}-{case.id}.gif", "prompt": case.prompt, "seed": case.seed}
        for case in run.spec.manifest.cases
        if run.spec.manifest.modality == "video" and (r := run.cases.get(case.id)) is not None and r.generation is not None
    ]
    return {
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
        "generate_seconds_median": headline[1]["median"] if headline else None,
        "generate_seconds_p90": headline[1]["p90"] if headline else None,
        "generate_case": headline[0] if headline else None,
        "fit_seconds": sum(f for f in (r.fit_seconds for r in run.cases.values()) if f is not None) or None,
        "timings": {"startup": startup, "generate": generate, "fit": fit},
        "timing_valid": bool(generate) and not invalid,
        "timing_reason": "; ".join(invalid) if generate else "no timed generation rounds",
        "peak_memory_bytes": usage.peak_memory_bytes if usage else None,
        "mean_memory_bytes": usage.mean_memory_bytes if usage else None,
        "cpu_percent": usage.cpu_percent if usage else None,
        "oom_killed": usage.oom_killed if usage else None,
        "quality": scores,
        "quality_by_case": quality_by_case,
        "metadata": run.metadata,
        "status": status,
        "errors": errors,
        "failures": failures,
        "outcomes": dict(rec.outcomes.get(run_id, {})) if rec else {},
        "log_tail": rec.log_tails.get(run_id, "") if rec else "",
        "media": media,
        "provenance": run_provenance(session, run),
    }


def collect_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """One row per model run: build, startup, memory, CPU, timing statistics, quality, failures, provenance.

    Under pytest-xdist the controller has no runs of its own: the workers' rows are merged in.
    """
    rec = recorder(session)
    rows: list[dict[str, Any]] = list(session.worker_rows)
    rows.extend(_row(session, run_id, run, rec) for run_id, run in sorted(session.runs.items()))
    return sorted(rows, key=lambda r: str(r["id"]))


def final_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """The controller's rows with the comparison attached; computed once at session end."""
    rec = recorder(session)
    if rec is not None and rec.rows is not None:
        return rec.rows
    rows: list[dict[str, Any]] = json.loads(json.dumps(collect_rows(session), default=str))  # plain JSON, like shipped rows
    if rec is not None:
        if rec.baseline is not None:
            from pytest_vdbench.report.compare import compare_rows

            rec.comparison = compare_rows(rec.baseline["models"], rows, session.options.regression_threshold)
            for row in rows:
                row["comparison"] = rec.comparison[row["id"]].as_dict()
        rec.rows = rows
    return rows


def regressed_models(rec: ReportRecorder) -> dict[str, list[str]]:
    """Model id -> the names of its regressed figures (models without regressions left out)."""
    if rec.comparison is None:
        return {}
    return {m: [d.metric for d in c.regressions] for m, c in sorted(rec.comparison.items()) if c.regressions}


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
    return "n/a" if value is None else f"{value:.2f}s" if value >= 0.1 else f"{value * 1000:.1f}ms"


def verdict(row: dict[str, Any]) -> str:
    if not row.get("timings", {}).get("generate"):
        return "n/a"
    return "VALID" if row.get("timing_valid") else "INVALID"


def regression_marks(row: dict[str, Any]) -> str:
    comparison = row.get("comparison")
    if not comparison:
        return ""
    if comparison["regressions"]:
        return "REGRESSED: " + ", ".join(comparison["regressions"])
    return comparison["note"] or "no regression"


def summary_lines(session: VdbenchSession) -> list[str]:
    """One line per model for the terminal: ready, generation median, peak memory, quality, verdict, status."""
    is_controller = not hasattr(session.config, "workerinput")
    rows = final_rows(session) if is_controller else collect_rows(session)
    lines = []
    for row in rows:
        if str(row["status"]).startswith("skipped"):
            lines.append(f"{row['id']:<24} {row['status']}")
            continue
        line = (
            f"{row['id']:<24} ready {_fmt_s(row['startup_seconds']):>8}  generate {_fmt_s(row['generate_seconds_median']):>8}  "
            f"peak {format_bytes(row['peak_memory_bytes']):>10}  {headline_quality(row['quality'])}  "
            f"{verdict(row)}  {row['status']}"
        )
        marks = regression_marks(row)
        lines.append(f"{line}  [{marks}]" if marks else line)
    lines.extend(f"{model:<24} skipped: {reason}" for model, reason in sorted(session.skipped.items()) if is_controller)
    rec = recorder(session)
    if rec is not None and rec.baseline is not None and session.options.compare is not None:
        regressed = regressed_models(rec)
        threshold = f"{session.options.regression_threshold:.0%}"
        if regressed:
            where = "; ".join(f"{m}: {', '.join(names)}" for m, names in regressed.items())
            lines.append(f"vdbench: regressions beyond {threshold} against {session.options.compare}: {where}")
            if session.options.fail_on_regression:
                lines.append("vdbench: exit status 1 because of these regressions (--vdbench-fail-on-regression)")
        else:
            lines.append(f"vdbench: no regression beyond {threshold} against {session.options.compare}")
    return lines


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the report from a CI artifact server
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def report_document(session: VdbenchSession) -> dict[str, Any]:
    """The report.json document (schema ``SCHEMA_VERSION``, documented in the README)."""
    from pytest_vdbench.report.provenance import environment

    rows = final_rows(session)
    host = session.host
    rec = recorder(session)
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
            "warmup": "each case's warmup rounds run first and are excluded; every later generation of the case is timed",
        },
        "models": rows,
        "skipped": dict(sorted(session.skipped.items())),
    }
    if rec is not None and rec.baseline is not None and rec.comparison is not None:
        regressed = regressed_models(rec)
        doc["comparison"] = {
            "baseline": str(session.options.compare),
            "baseline_testrun": (rec.baseline.get("environment") or {}).get("testrun"),
            "threshold": session.options.regression_threshold,
            "regressed_models": regressed,
            "gone": sorted(m for m, c in rec.comparison.items() if c.note.startswith("gone")),
        }
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """report.md: the seed-004 table plus timing statistics, failures and the comparison."""
    rows = doc["models"]
    out = ["# vdbench report", ""]
    out.append(
        "| Model | Build | Image size | Startup | Peak memory | CPU | Execution (fit + generate) "
        "| p90 | Timing | Quality | Status |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = "n/a" if r["cpu_percent"] is None else f"{r['cpu_percent']:.0f}%"
        build = _fmt_s(r["build_seconds"]) + (" (cached)" if r["build_cached"] else "")
        execution = _fmt_s(r["generate_seconds_median"])
        if r.get("fit_seconds") is not None:
            execution = f"{_fmt_s(r['fit_seconds'])} + {execution}"
        status = r["status"]
        marks = regression_marks(r)
        if marks:
            status += f" ({marks})"
        cells = [
            r["id"],
            build,
            format_bytes(r["image_size_bytes"]),
            _fmt_s(r["startup_seconds"]),
            format_bytes(r["peak_memory_bytes"]),
            cpu,
            execution,
            _fmt_s(r.get("generate_seconds_p90")),
            verdict(r),
            headline_quality(r["quality"]),
            status,
        ]
        out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    for spec_id, reason in doc["skipped"].items():
        out.append(f"| {_md_cell(spec_id)} | | | | | | | | | | skipped: {_md_cell(reason)} |")
    stats = doc["statistics"]
    out += [
        "",
        f"Timings: median of the timed rounds (warmup excluded); VALID needs ≥ {stats['min_rounds']} rounds "
        f"and ≥ {stats['min_duration_seconds']:g}s in total.",
    ]
    invalid = [(r["id"], r["timing_reason"]) for r in rows if verdict(r) == "INVALID"]
    if invalid:
        out += ["", "## INVALID timings", ""] + [f"- **{_md_cell(m)}**: {_md_cell(reason)}" for m, reason in invalid]
    comparison = doc.get("comparison")
    if comparison:
        out += ["", f"## Comparison with `{comparison['baseline']}` (threshold {comparison['threshold']:.0%})", ""]
        out += ["| Model | Figure | Before | After | Change | |", "|---|---|---|---|---|---|"]
        for r in rows:
            comp = r.get("comparison") or {}
            if comp.get("note") and not comp.get("deltas"):
                out.append(f"| {_md_cell(r['id'])} | | | | | {_md_cell(comp['note'])} |")
            for d in comp.get("deltas", []):
                flag = "**REGRESSION**" if d["regression"] else d["note"]
                out.append(
                    f"| {_md_cell(r['id'])} | {_md_cell(d['metric'])} | {_fmt_value(d['kind'], d['before'])} "
                    f"| {_fmt_value(d['kind'], d['after'])} | {d['change']:+.1%} | {_md_cell(flag)} |"
                )
        for model in comparison["gone"]:
            out.append(f"| {_md_cell(model)} | | | | | gone: in the previous report only |")
    failed = [r for r in rows if r.get("failures")]
    if failed:
        out += ["", "## Failures", ""]
        for r in failed:
            for f in r["failures"]:
                first = f["message"].splitlines()[0] if f["message"] else ""
                out.append(f"- **{_md_cell(r['id'])}** `{f['test']}`: {_md_cell(first)}")
    return "\n".join(out) + "\n"


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fmt_value(kind: str, value: float) -> str:
    if kind == "timing":
        return _fmt_s(value)
    if kind == "memory":
        return format_bytes(value)
    return f"{value:.4g}"


def write_reports(session: VdbenchSession, directory: Path) -> None:
    """Write report.json (versioned schema), report.md (the seed-004 table) and report.html atomically."""
    from pytest_vdbench.report.html import render_html

    directory.mkdir(parents=True, exist_ok=True)
    doc = report_document(session)
    _atomic_write(directory / "report.json", json.dumps(doc, indent=2, default=str))
    _atomic_write(directory / "report.md", markdown(doc))
    _atomic_write(directory / "report.html", render_html(doc, directory))
