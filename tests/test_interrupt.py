"""Ctrl-C's way out, engine-free: an honest partial report, no wait for the machine probe, parallel stops.

The real signal on the Docker runtime is tested in test_docker_runtime.py
(``test_interrupted_run_leaves_no_container``); its timing is ``bench/bench_interrupt.py``'s.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import toy_manifest
from pytest_vdbench.session import keep_crash_entry, stop_all

#: a plugin for the inner run (``-p``: a conftest would lie above the suite's rootdir): Ctrl-C in bbint's
#: first generation, and a machine probe that never ends
INTERRUPTING_PLUGIN = """
import time
import pytest

@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's own (a -p plugin registers before it)
def pytest_benchmark_generate_machine_info(config):
    time.sleep(600)  # stands in for a probe on a machine too busy to finish it

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if "bbint" in item.nodeid and item.name.startswith("test_generate"):
        raise KeyboardInterrupt
"""

RECORDING_PLUGIN = """
import threading
from pathlib import Path
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_generate_machine_info(config):
    with Path("probes.txt").open("a") as fh:
        fh.write(threading.current_thread().name + "\\n")
    return {"custom": "from conftest"}
"""


def run(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={suite}",
        "--vdbench-runtime=process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "--vdbench-report=rep",
        *extra,
        timeout=120,
    )


def test_an_interrupted_run_reports_what_finished_and_what_did_not(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    """aadone finishes, Ctrl-C comes in bbint's generation, ccnever never starts; the probe never ends."""
    pytester.makepyfile(interruptor=INTERRUPTING_PLUGIN)
    suite = write_suite(toy_manifest("aadone"), toy_manifest("bbint"), toy_manifest("ccnever"))
    result = run(pytester, suite, "-p", "interruptor")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # the crash line pytest prints is the one it printed before the traceback was cut
    result.stdout.fnmatch_lines(["*!!! KeyboardInterrupt !!!*", "*interruptor.py:*: KeyboardInterrupt", "*--full-trace*"])
    result.stdout.fnmatch_lines(["aadone *ok", "bbint *interrupted"])
    doc = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert doc["run"] == {
        "status": "interrupted",
        "interrupted_by": "KeyboardInterrupt",
        "unfinished_models": ["bbint"],
        "not_started": ["ccnever"],
    }
    rows = {r["id"]: r for r in doc["models"]}
    assert set(rows) == {"aadone", "bbint"}
    assert rows["aadone"]["status"] == "ok" and rows["aadone"]["generate_seconds_median"] is not None
    assert rows["bbint"]["status"] == "interrupted" and rows["bbint"]["outcomes"]["passed"] >= 1  # its build and health
    # the report did not wait for a probe that was still running
    assert doc["environment"]["machine_info"]["error"].startswith("not probed: the run was interrupted")
    md = (pytester.path / "rep" / "report.md").read_text()
    assert "**Interrupted** (`KeyboardInterrupt`): partial results" in md and "Never started: ccnever." in md
    html = (pytester.path / "rep" / "report.html").read_text()
    assert "interrupted (KeyboardInterrupt): partial results; unfinished: bbint; never started: ccnever" in html


def test_the_machine_probe_runs_once_in_the_background_and_honours_a_hook_override(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    pytester.makepyfile(probe_recorder=RECORDING_PLUGIN)
    result = run(pytester, write_suite(toy_manifest("alpha"), toy_manifest("beta")), "-p", "probe_recorder")
    result.assert_outcomes(passed=12, skipped=2)  # test_build skips on the process runtime
    doc = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert doc["run"]["status"] == "finished" and doc["run"]["unfinished_models"] == []
    assert doc["environment"]["machine_info"] == {"custom": "from conftest"}
    assert (pytester.path / "probes.txt").read_text().splitlines() == ["vdbench-machine-info"]  # once, not per row
    assert {r["provenance"]["machine_id"] for r in doc["models"]} == {doc["environment"]["machine_id"]}


def _raise_from_hidden_helper() -> None:
    __tracebackhide__ = True
    raise KeyboardInterrupt


def _caller() -> None:
    _raise_from_hidden_helper()


def test_keep_crash_entry_keeps_the_entry_pytest_prints() -> None:
    with pytest.raises(KeyboardInterrupt) as excinfo:
        _caller()
    crash = excinfo.getrepr().reprcrash
    assert len(excinfo.traceback) == 3  # this test, _caller, the hidden helper
    keep_crash_entry(excinfo)
    assert [e.name for e in excinfo.traceback] == ["_caller", "_raise_from_hidden_helper"]
    after = excinfo.getrepr().reprcrash
    assert crash is not None and after is not None and (after.path, after.lineno) == (crash.path, crash.lineno)


def test_keep_crash_entry_leaves_an_all_hidden_traceback_alone() -> None:
    __tracebackhide__ = True  # this frame too: no entry is pytest's crash line
    with pytest.raises(KeyboardInterrupt) as excinfo:
        _raise_from_hidden_helper()
    whole = list(excinfo.traceback)
    assert all(entry.ishidden(excinfo) for entry in whole)
    keep_crash_entry(excinfo)
    assert list(excinfo.traceback) == whole


def test_stop_all_stops_together_and_raises_the_first_error_after_all() -> None:
    together = threading.Barrier(2, timeout=30)  # one after the other, the first stop would wait in vain
    done: list[str] = []

    def model() -> None:
        together.wait()
        done.append("model")

    def scorer() -> None:
        together.wait()
        raise RuntimeError("engine said no")

    with pytest.raises(RuntimeError, match="engine said no"):
        stop_all([scorer, model])
    assert done == ["model"]
