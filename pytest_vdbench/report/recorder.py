"""The report's one recorder: it watches the generated tests and runs the end-of-session sequence.

Registered by the plugin next to the session (the session never imports the report). It keeps
each test's failure message and each model's last log lines before its container goes away; at
the end of the session it saves the media, ships rows and timings from an xdist worker (or, on the
controller, merges the workers' ones), compares against a baseline, writes the report files and the
pytest-benchmark JSON, and prints the summary.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_vdbench.report.row import build_row

if TYPE_CHECKING:
    from pytest_vdbench.report.compare import ModelComparison
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.session import VdbenchSession

__all__ = ["SCHEMA_VERSION", "ReportRecorder", "collect_rows", "final_rows", "recorder", "regressed_models"]

#: 2: timings with statistics and verdicts, failures, log tails, provenance, environment, comparison
SCHEMA_VERSION = 2
LOG_TAIL_LINES = 40
MESSAGE_LIMIT = 4000

RECORDER_KEY = pytest.StashKey["ReportRecorder"]()


class ReportRecorder:
    """Hooks that gather what the report needs beyond ``ModelRun``; also owns the comparison."""

    def __init__(self, session: VdbenchSession) -> None:
        self.session = session
        self.is_worker = hasattr(session.config, "workerinput")
        self.model_of: dict[str, str] = {}  # test nodeid -> model id (generated tests only)
        self.failures: dict[str, list[dict[str, str]]] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.log_tails: dict[str, str] = {}
        self.worker_rows: list[dict[str, Any]] = []  # rows shipped by xdist workers (controller)
        self.timing_records: list[dict[str, Any]] = []  # pytest-benchmark records of every process
        self.baseline: dict[str, Any] | None = None
        self.comparison: dict[str, ModelComparison] | None = None
        self.rows: list[dict[str, Any]] | None = None  # the controller's final rows, once computed
        options = session.options
        if options.compare is not None and not self.is_worker:
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
    def pytest_sessionfinish_report(self, session: pytest.Session) -> None:
        """After the session stopped every model: media, timings, rows, report files, exit status."""
        options = self.session.options
        if options.report_dir is not None:  # every process keeps the videos of its own runs
            from pytest_vdbench.report.media import save_videos

            for run in self.session.runs.values():
                save_videos(run, options.report_dir / "media")
        if self.is_worker:
            self._ship_to_controller()
            return
        self._write_timings()
        if options.report_dir is not None:
            from pytest_vdbench.report.document import write_reports

            write_reports(self.session, options.report_dir)
        if self.baseline is not None:
            final_rows(self.session)
            if options.fail_on_regression and regressed_models(self) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _ship_to_controller(self) -> None:
        from pytest_vdbench.report.timings import run_records

        workerinput: dict[str, Any] = self.session.config.workerinput  # type: ignore[attr-defined]
        output = self.session.config.workeroutput  # type: ignore[attr-defined]
        output["vdbench_timings"] = run_records(self.session.runs.values(), workerinput["workerid"])
        output["vdbench_rows"] = json.loads(json.dumps(collect_rows(self.session), default=str))
        output["vdbench_skipped"] = dict(self.session.skipped)

    def _write_timings(self) -> None:
        from pytest_vdbench.report.timings import run_records, write_benchmark_json

        self.timing_records.extend(run_records(self.session.runs.values(), "main"))
        if self.session.options.benchmark_json is not None:
            write_benchmark_json(self.session.options.benchmark_json, self.timing_records)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist controller: collect a finished worker's rows, timings and skips."""
        output = getattr(node, "workeroutput", {})
        self.timing_records.extend(output.get("vdbench_timings", []))
        self.worker_rows.extend(output.get("vdbench_rows", []))
        self.session.skipped.update(output.get("vdbench_skipped", {}))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        from pytest_vdbench.report.summary import summary_lines

        lines = [*self.session.notices, *summary_lines(self.session)]
        if self.session.work_dir.exists() and terminalreporter.stats.get("failed"):
            lines.append(f"vdbench: build and process logs kept in {self.session.work_dir}")
        if lines:
            terminalreporter.write_sep("=", "vdbench summary")
            for line in lines:
                terminalreporter.write_line(line)


def recorder(session: VdbenchSession) -> ReportRecorder | None:
    return session.config.stash.get(RECORDER_KEY, None)


def collect_rows(session: VdbenchSession) -> list[dict[str, Any]]:
    """One row per model run; under pytest-xdist the controller merges in the workers' rows."""
    rec = recorder(session)
    rows: list[dict[str, Any]] = list(rec.worker_rows) if rec else []
    rows.extend(dict(build_row(session, run_id, run, rec)) for run_id, run in sorted(session.runs.items()))
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
