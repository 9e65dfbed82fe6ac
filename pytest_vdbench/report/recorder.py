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

from pytest_vdbench.report.rows import collect_rows, final_rows, regressed_models
from pytest_vdbench.report.state import SCHEMA_VERSION, STATE_KEY, ReportState

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.session import VdbenchSession

__all__ = ["ReportRecorder"]

LOG_TAIL_LINES = 40
MESSAGE_LIMIT = 4000


class ReportRecorder:
    """Hooks that gather what the report needs beyond ``ModelRun`` (into a :class:`ReportState`)."""

    def __init__(self, session: VdbenchSession) -> None:
        self.session = session
        self.is_worker = session.role.is_worker
        self.model_of: dict[str, str] = {}  # test nodeid -> model id (generated tests only)
        self.state = ReportState()
        if session.options.compare is not None and not self.is_worker:
            from pytest_vdbench.report.compare import load_baseline

            if isinstance(session.options.compare, str):  # last / run:ID from the results store
                from pytest_vdbench.store.history import store_baseline

                self.state.baseline = store_baseline(session, session.options.compare, SCHEMA_VERSION)
            else:
                self.state.baseline = load_baseline(session.options.compare, SCHEMA_VERSION)
        session.config.stash[STATE_KEY] = self.state

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.pluginmanager.unregister(self)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from pytest_vdbench.collect import VariantModule

        for item in items:
            if isinstance(item.parent, VariantModule):
                self.model_of[item.nodeid] = model = item.parent.spec.id
                self.state.tests[model] = self.state.tests.get(model, 0) + 1

    def pytest_sessionstart(self) -> None:
        if not self.is_worker and self.session.options.report_dir is not None:
            from pytest_vdbench.report.provenance import MachineProbe

            self.state.machine = MachineProbe(self.session.config).start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.state.interrupted = excinfo.exconly().strip() or excinfo.typename

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
            self.state.log_tails[run.spec.id] = tail

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.session.role.reports and report.failed:  # a worker's report reaches the controller, too
            from pytest_vdbench.collect import INVALID_PROPERTY

            invalid = dict(report.user_properties).get(INVALID_PROPERTY)
            if isinstance(invalid, dict):
                entry = {"manifest": invalid["manifest"], "test": report.nodeid, "status": "failed: invalid manifest"}
                self.state.invalid_manifests[invalid["manifest"]] = {**entry, "problems": list(invalid["problems"])}
                return
        model = self.model_of.get(report.nodeid)
        if model is None:  # the xdist controller maps nothing: workers ship their own rows
            return
        counts = self.state.outcomes.setdefault(model, {"passed": 0, "failed": 0, "skipped": 0})
        if report.when == "teardown":
            self.state.finished[model] = self.state.finished.get(model, 0) + 1
        if report.failed:
            counts["failed"] += 1
            text = report.longreprtext.strip()
            if len(text) > MESSAGE_LIMIT:
                text = text[:MESSAGE_LIMIT] + f"\n… ({len(text) - MESSAGE_LIMIT} more characters)"
            test = report.nodeid.split("::")[-1].removesuffix(f"@{model}")  # xdist's loadgroup suffix
            self.state.failures.setdefault(model, []).append({"test": test, "phase": report.when or "call", "message": text})
        elif report.when == "call" and report.passed:
            counts["passed"] += 1
        elif report.skipped:
            counts["skipped"] += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        for run in self.session.runs.values():  # models whose module teardown never came (interrupts)
            if run.spec.id not in self.state.log_tails:
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
        if self.state.baseline is not None:
            final_rows(self.session)
            if options.fail_on_regression and regressed_models(self.state) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _ship_to_controller(self) -> None:
        from pytest_vdbench.report.timings import run_records

        output = self.session.config.workeroutput  # type: ignore[attr-defined]
        output["vdbench_timings"] = run_records(self.session.runs.values(), self.session.role.worker_id)
        output["vdbench_rows"] = json.loads(json.dumps(collect_rows(self.session), default=str))
        output["vdbench_skipped"] = dict(self.session.skipped)

    def _write_timings(self) -> None:
        from pytest_vdbench.report.timings import run_records, write_benchmark_json

        self.state.timing_records.extend(run_records(self.session.runs.values(), "main"))
        if self.session.options.benchmark_json is not None:
            write_benchmark_json(self.session.options.benchmark_json, self.state.timing_records)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist controller: collect a finished worker's rows, timings and skips."""
        output = getattr(node, "workeroutput", {})
        self.state.timing_records.extend(output.get("vdbench_timings", []))
        self.state.worker_rows.extend(output.get("vdbench_rows", []))
        self.session.skipped.update(output.get("vdbench_skipped", {}))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker:  # nobody reads a worker's terminal: the controller prints every model's line
            return
        from pytest_vdbench.report.summary import summary_lines

        lines = [*self.session.notices, *summary_lines(self.session)]
        logs = self.session.logs_line(bool(terminalreporter.stats.get("failed")))
        if logs:
            lines.append(logs)
        if lines:
            terminalreporter.write_sep("=", "vdbench summary")
            for line in lines:
                terminalreporter.write_line(line)
