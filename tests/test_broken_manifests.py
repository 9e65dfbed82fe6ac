"""A manifest that fails validation is one failing test (``x.yaml::manifest``); every other model runs.

Inner ``pytest --vdbench`` sessions on the process runtime (no engine): one good toy model beside
broken manifests of several kinds. Each broken file must fail exactly its one test with the lines
``vdbench validate`` prints for it, the good model's tests must pass, and the exit status must be 1
(tests failed), not 2 (interrupted) or 4 (usage error).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import ADAPTERS, RunVdbench, toy_manifest
from pytest_vdbench.store import open_store

CORPUS = Path(__file__).parent / "bad_manifests"
#: the good model's tests on the process runtime: test_build skips (no image), the others pass
GOOD = {"passed": 6, "skipped": 1}


def _dated(name: str) -> str:
    text = yaml.safe_dump(toy_manifest(name), sort_keys=False).replace("  fault: none\n", "  fault: none\n  since: 2024-01-01\n")
    assert "since: 2024-01-01" in text
    return text


def _over_budget() -> dict[str, object]:
    doc = toy_manifest("budget", timeouts={"startup": "20s", "generate": "2s"})
    doc["expect"] = {**doc["expect"], "budgets": {"generate_seconds": 5}}  # type: ignore[dict-item]
    return doc


#: file name -> manifest: a fault of each class (JSON value, YAML syntax, alias bomb, not a manifest,
#: a check beyond the schema, a repeated model name)
BROKEN: dict[str, str | dict[str, object]] = {
    "dated": _dated("dated"),
    "syntax": "name: syntax\nmodality: video\ncases: [unclosed\n",
    "bomb": (CORPUS / "aliases" / "bomb_in_params.yaml").read_text().replace("../../adapters", str(ADAPTERS)),
    "notes": "- not\n- a manifest\n",
    "budget": _over_budget(),
    "zz-twin": toy_manifest("good"),  # sorted after good.yaml: the second user of the name is the broken one
}


@pytest.fixture
def zoo(write_suite: Callable[..., Path]) -> Path:
    """``suite/``: good.yaml and one broken manifest of each kind in BROKEN."""
    return write_suite(toy_manifest("good"), *BROKEN.values(), names=["good", *BROKEN])


def validate_lines(pytester: pytest.Pytester, *paths: str) -> list[str]:
    """What `vdbench validate PATH...` prints, run where the inner pytest runs."""
    result = pytester.run(sys.executable, "-m", "pytest_vdbench.tools.cli", "validate", *paths)
    assert result.ret == 1, result.stdout.str()
    return result.stdout.lines


def invalid_entries(report_dir: Path) -> dict[str, list[str]]:
    doc = json.loads((report_dir / "report.json").read_text())
    return {e["manifest"]: e["problems"] for e in doc["invalid_manifests"]}


def test_each_broken_manifest_fails_its_one_test_with_validates_lines_and_the_good_model_runs(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, zoo: Path
) -> None:
    start = time.monotonic()
    result = run_vdbench("--vdbench-report", "out", "-p", "no:cacheprovider", "-rf", suite=zoo)
    assert time.monotonic() - start < 120  # the alias bomb is refused, not expanded (a hang guard, not a speed target)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=len(BROKEN), **GOOD)
    result.stdout.fnmatch_lines([f"FAILED suite/{name}.yaml::manifest - *" for name in sorted(BROKEN)], consecutive=False)
    assert "Interrupted" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    # exactly validate's lines, file by file (validate sees the whole folder, so the twin's name is taken)
    expected = validate_lines(pytester, "suite")
    entries = invalid_entries(pytester.path / "out")
    assert sorted(entries) == [f"suite/{name}.yaml" for name in sorted(BROKEN)]
    assert [line for name in sorted(entries) for line in entries[name]] == expected
    for name, lines in entries.items():
        assert lines and all(line.startswith(f"{name}:") for line in lines)
        result.stdout.fnmatch_lines(
            [f"*_ {name}: invalid manifest _*", *lines, f"(check it without pytest: vdbench validate {name})"]
        )
    assert entries["suite/zz-twin.yaml"] == [
        f"suite/zz-twin.yaml:1: name: model name 'good' is already used by {zoo / 'good.yaml'}"
    ]
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert [m["id"] for m in report["models"]] == ["good"]
    markdown = (pytester.path / "out" / "report.md").read_text()
    assert "| suite/dated.yaml | | | | | | | | | | failed: invalid manifest |" in markdown
    assert f"- **suite/dated.yaml** `manifest`: {entries['suite/dated.yaml'][0]}" in markdown
    result.stdout.fnmatch_lines(
        ["*vdbench summary*", "suite/dated.yaml * failed: invalid manifest, 1 problem(s): suite/dated.yaml:6: options.since:*"]
    )


def test_the_same_items_fail_under_xdist(pytester: pytest.Pytester, run_vdbench: RunVdbench, zoo: Path) -> None:
    result = run_vdbench("-n", "2", "--vdbench-report", "out", "-p", "no:cacheprovider", suite=zoo)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=len(BROKEN), **GOOD)
    assert "Different tests were collected" not in result.stdout.str()
    entries = invalid_entries(pytester.path / "out")  # shipped from the workers to the controller
    assert [line for name in sorted(entries) for line in entries[name]] == validate_lines(pytester, "suite")


def test_last_failed_reruns_only_the_broken_manifest(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("good"), _dated("dated"), names=["good", "dated"])
    first = run_vdbench(suite=suite)
    first.assert_outcomes(failed=1, **GOOD)
    again = run_vdbench("--lf", suite=suite)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*run-last-failure: rerun previous 1 failure*", "FAILED suite/dated.yaml::manifest - *"])
    (suite / "dated.yaml").write_text(yaml.safe_dump(toy_manifest("dated"), sort_keys=False))  # fixed
    fixed = run_vdbench("--lf", suite=suite)
    assert fixed.ret == pytest.ExitCode.OK  # its id is gone, so pytest runs everything (its usual --lf)
    fixed.assert_outcomes(passed=2 * GOOD["passed"], skipped=2 * GOOD["skipped"])


def test_model_selection_keeps_a_broken_manifest_by_its_name_line(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("good"), _dated("dated"), names=["good", "dated"])
    only_bad = run_vdbench("--vdbench-model", "dat*", suite=suite)
    only_bad.assert_outcomes(failed=1)
    only_bad.stdout.fnmatch_lines(["suite/dated.yaml:6: options.since: datetime.date(2024, 1, 1) (date) cannot be sent as JSON*"])
    only_good = run_vdbench("--vdbench-model", "good", "-k", "requirements", suite=suite)
    only_good.assert_outcomes(passed=1)
    nothing = run_vdbench("--vdbench-model", "nope", suite=suite)
    assert nothing.ret == pytest.ExitCode.USAGE_ERROR
    nothing.stderr.fnmatch_lines(["*--vdbench-model nope: no model matches; known models: good"])


def test_option_errors_stay_usage_errors_beside_a_broken_manifest(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("good"), _dated("dated"), names=["good", "dated"])
    runtime = run_vdbench(suite=suite, runtime="nope")
    assert runtime.ret == pytest.ExitCode.USAGE_ERROR
    runtime.stderr.fnmatch_lines(["*--vdbench-runtime nope: unknown runtime 'nope'; valid runtimes: *"])
    bad_value = run_vdbench("--vdbench-min-rounds", "zero", suite=suite)
    assert bad_value.ret == pytest.ExitCode.USAGE_ERROR
    metrics = run_vdbench("--vdbench-metrics", "nope", suite=suite)
    assert metrics.ret == pytest.ExitCode.USAGE_ERROR
    metrics.stderr.fnmatch_lines(["*--vdbench-metrics / ini vdbench_metrics: no metric container 'nope'*"])


def test_a_broken_manifest_is_not_stored_as_a_model(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("good"), _dated("dated"), names=["good", "dated"])
    url = f"sqlite:///{pytester.path / 'results.db'}"
    result = run_vdbench("--vdbench-store", url, "--vdbench-reuse", suite=suite)
    result.assert_outcomes(failed=1, **GOOD)
    store = open_store(url)
    try:
        (run,) = store.list_runs()
        assert [(m.model_id, m.passed) for m in store.run_models(run["id"])] == [("good", True)]
    finally:
        store.close()
    reused = run_vdbench("--vdbench-store", url, "--vdbench-reuse", suite=suite)  # good is reused, dated fails again
    reused.assert_outcomes(failed=1)
    reused.stdout.fnmatch_lines(["FAILED suite/dated.yaml::manifest - *"])


def test_an_unknown_metric_container_fails_only_that_manifest(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("good"), toy_manifest("scored", metrics=["nope"]), names=["good", "scored"])
    result = run_vdbench(suite=suite)
    result.assert_outcomes(failed=1, **GOOD)
    result.stdout.fnmatch_lines(["suite/scored.yaml:*: metrics: no metric container 'nope'; known: none*"])


def test_a_manifest_pytest_cannot_collect_stays_a_usage_error(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    """A symlink loop is no file pytest visits, so no test could carry it: the run stops, naming it."""
    suite = write_suite(toy_manifest("good"), names=["good"])
    (suite / "a.yaml").symlink_to("b.yaml")
    (suite / "b.yaml").symlink_to("a.yaml")
    result = run_vdbench(suite=suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*invalid vdbench manifest(s):", "*/suite/a.yaml:1: (file): cannot read manifest: it is a symlink loop*"]
    )
