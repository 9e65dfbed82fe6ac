"""Build and process logs land where the user asked, and the path the summary prints holds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import RunVdbench, toy_manifest


def logs_line(result: pytest.RunResult) -> Path:
    """The folder the summary names (``vdbench: build and process logs in DIR``)."""
    for line in result.outlines:
        if line.startswith("vdbench: build and process logs in "):
            return Path(line.removeprefix("vdbench: build and process logs in "))
    raise AssertionError("no logs line in the summary:\n" + result.stdout.str())


def model_logs(folder: Path, model: str) -> list[Path]:
    return [p for p in folder.rglob(f"{model}-*.log") if "vdbench adapter" in p.read_text()]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["solo", "xdist"])
def test_logs_dir_holds_the_logs_of_every_worker(
    workers: list[str], pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta", fault="shape"))
    result = run_vdbench("--vdbench-logs", "my logs", "-p", "no:cacheprovider", *workers, suite=suite)
    # beta's malformed output fails test_generate; its test_determinism and test_budget skip naming it
    result.assert_outcomes(failed=1, passed=8, skipped=5)
    printed = logs_line(result)
    assert printed == pytester.path / "my logs"
    assert model_logs(printed, "alpha") and model_logs(printed, "beta"), sorted(map(str, printed.rglob("*")))


def test_report_dir_keeps_the_logs_of_a_passing_run(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("alpha"))
    result = run_vdbench("--vdbench-report", "rep", "-p", "no:cacheprovider", suite=suite)
    result.assert_outcomes(passed=6, skipped=1)
    assert logs_line(result) == pytester.path / "rep" / "logs"
    assert model_logs(pytester.path / "rep" / "logs", "alpha")


def test_unasked_logs_of_a_passing_run_are_not_kept(run_vdbench: RunVdbench, write_suite: Callable[..., Path]) -> None:
    result = run_vdbench("-p", "no:cacheprovider", suite=write_suite(toy_manifest("alpha")))
    result.assert_outcomes(passed=6, skipped=1)
    assert "build and process logs" not in result.stdout.str()


def test_a_failed_run_that_logged_nothing_leaves_no_empty_folder(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose only failure is an invalid manifest builds and starts nothing: no logs, no folder, no line."""
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the run's own temporary folder, to look into
    bad = toy_manifest("alpha")
    bad["timeouts"] = {"startup": "soon"}
    result = run_vdbench("-p", "no:cacheprovider", suite=write_suite(bad))
    result.assert_outcomes(failed=1)
    assert "build and process logs" not in result.stdout.str()
    assert not [p for p in tmp.glob("vdbench-*") if p.is_dir()], sorted(map(str, tmp.rglob("*")))


def test_only_the_newest_failed_runs_keep_their_logs(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing run keeps its logs for the user; the next runs' sweep keeps the newest 3, so a nightly
    CI that fails every night does not fill the temporary folder one folder per run."""
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    suite = write_suite(toy_manifest("beta", fault="shape"))
    printed = []
    for _ in range(5):
        result = run_vdbench("-p", "no:cacheprovider", "-k", "test_health or test_generate", suite=suite)
        result.assert_outcomes(failed=1, passed=1)
        printed.append(logs_line(result))
        assert model_logs(printed[-1], "beta")  # what the line points at holds the model's log
    left = sorted(p for p in tmp.glob("vdbench-*") if p.is_dir())
    # the 5th run swept before it began: runs 2-4 were kept, and the 5th is the newest
    assert left == sorted(printed[1:]), (left, printed)
