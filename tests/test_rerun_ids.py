"""pytest's habits on generated tests: copied ids, --lf, --ff, --deselect, -k, option values after a space."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import RunVdbench, toy_manifest
from pytest_vdbench.report import SCHEMA_VERSION


def two_cases(name: str = "toy") -> dict[str, object]:
    """The toy model with two cases, fox and owl."""
    fox = {"id": "fox", "prompt": "a fox in the snow", "seed": 1, "params": {"frames": 6, "height": 16, "width": 16}}
    owl = {**fox, "id": "owl", "prompt": "an owl at night"}
    return toy_manifest(name, cases=[fox, owl])


def collected(result: pytest.RunResult) -> list[str]:
    """The ids ``--collect-only -q`` printed, in order."""
    return [line for line in result.outlines if "::" in line and not line.startswith(("ERROR", "WARNING"))]


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """``-rA``'s short summary: test id -> PASSED/FAILED/SKIPPED (the id as pytest prints it)."""
    found: dict[str, str] = {}
    for line in result.outlines:
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            found[rest.split(" - ")[0]] = word
    return found


def test_a_copied_id_collects_exactly_that_test(run_vdbench: RunVdbench, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(two_cases(), toy_manifest("other"))
    every = collected(run_vdbench("--collect-only", "-q", suite=suite))
    wanted = "suite/toy.yaml::toy::test_generate[fox]"
    assert wanted in every and "suite/toy.yaml::toy::test_generate[owl]" in every
    for args in ((wanted,), (wanted, "--vdbench-suite", str(suite))):  # with or without the suite option
        result = run_vdbench("--collect-only", "-q", *args)
        assert collected(result) == [wanted], result.stdout.str()
    # a function name without parameters collects its cases, a model id all its tests
    assert collected(run_vdbench("--collect-only", "-q", "suite/toy.yaml::toy::test_generate")) == [
        "suite/toy.yaml::toy::test_generate[fox]",
        "suite/toy.yaml::toy::test_generate[owl]",
    ]
    model = collected(run_vdbench("--collect-only", "-q", "suite/other.yaml::other"))
    assert model and all(i.startswith("suite/other.yaml::other::") for i in model)


def test_vdbench_alone_collects_the_suites_and_the_plugin_off_collects_no_manifest(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, write_suite: Callable[..., Path]
) -> None:
    (pytester.path / "model_suites").mkdir()
    (pytester.path / "model_suites" / "toy.yaml").write_text(json.dumps(toy_manifest()))
    pytester.makepyfile(test_mine="def test_mine(): pass")
    only = collected(run_vdbench("--collect-only", "-q"))
    assert only and all(i.startswith("model_suites/toy.yaml::toy::") for i in only), only
    off = pytester.runpytest_subprocess("--collect-only", "-q", "model_suites", "test_mine.py")
    assert collected(off) == ["test_mine.py::test_mine"]


def test_suite_outside_the_rootdir_has_ids_that_rerun(
    pytester: pytest.Pytester, run_vdbench: RunVdbench, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytester.makeini("[pytest]\n")  # the project's ini file holds the rootdir (else pytest derives it from the paths)
    outside = tmp_path_factory.mktemp("outside-suite")
    (outside / "toy.yaml").write_text(json.dumps(two_cases()))
    every = collected(run_vdbench("--collect-only", "-q", suite=outside))
    wanted = f"{(outside / 'toy.yaml').as_posix()}::toy::test_generate[owl]"
    assert wanted in every, every
    assert collected(run_vdbench("--collect-only", "-q", wanted)) == [wanted]


def test_lf_reruns_exactly_the_failures_and_ff_runs_them_first(run_vdbench: RunVdbench, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(two_cases("good"), two_cases("bad") | {"options": {"fault": "shape"}})
    first = run_vdbench("-rA", suite=suite)
    failed = {test for test, outcome in outcomes(first).items() if outcome == "FAILED"}
    assert "suite/bad.yaml::bad::test_generate[owl]" in failed, first.stdout.str()
    assert len(failed) < len(outcomes(first))
    again = run_vdbench("--lf", "-rA", suite=suite)
    assert set(outcomes(again)) == failed, again.stdout.str()
    first_ones = collected(run_vdbench("--ff", "--collect-only", "-q", suite=suite))
    assert set(first_ones[: len(failed)]) == failed and len(first_ones) > len(failed)


def test_deselect_and_k(run_vdbench: RunVdbench, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(two_cases())
    every = collected(run_vdbench("--collect-only", "-q", suite=suite))
    gone = "suite/toy.yaml::toy::test_generate[fox]"
    rest = collected(run_vdbench("--collect-only", "-q", "--deselect", gone, suite=suite))
    assert rest == [i for i in every if i != gone]
    picked = collected(run_vdbench("--collect-only", "-q", "-k", "generate and owl", suite=suite))
    assert picked == ["suite/toy.yaml::toy::test_generate[owl]"]


@pytest.mark.parametrize("option", ["--vdbench-report", "--vdbench-suite", "--vdbench-benchmark-json", "--vdbench-compare"])
def test_an_option_value_after_a_space_reads_like_after_an_equals_sign(
    option: str, pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An existing path as a vdbench option's value must not move the rootdir, the ini file or the ids."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\naddopts = ["-p", "no:randomly"]\nmarkers = ["mine: m"]\n')
    (pytester.path / "model_suites").mkdir()
    (pytester.path / "model_suites" / "toy.yaml").write_text(json.dumps(two_cases()))
    elsewhere = tmp_path_factory.mktemp("existing")
    value = {
        "--vdbench-report": elsewhere,
        "--vdbench-suite": pytester.path / "model_suites",
        "--vdbench-benchmark-json": elsewhere / "bench.json",
        "--vdbench-compare": elsewhere / "report.json",
    }[option]
    (elsewhere / "bench.json").write_text("{}")
    (elsewhere / "report.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "models": []}))
    if option == "--vdbench-suite":  # a suite outside the project is the case that moved the rootdir
        value = tmp_path_factory.mktemp("suite-outside")
        (value / "toy.yaml").write_text(json.dumps(two_cases()))
    spaced = pytester.runpytest_subprocess("--vdbench", option, str(value), "--collect-only")
    equals = pytester.runpytest_subprocess("--vdbench", f"{option}={value}", "--collect-only")
    assert spaced.ret == equals.ret == pytest.ExitCode.OK, spaced.stdout.str() + spaced.stderr.str()
    spaced.stdout.fnmatch_lines([f"rootdir: {pytester.path}", "configfile: pyproject.toml"])
    assert _without_timing(spaced) == _without_timing(equals)


def _without_timing(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if " in " not in line and not line.startswith("platform ")]
