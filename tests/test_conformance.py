"""Each generated test fails on a model broken in the way it checks, and only that test.

The toy adapter (tests/adapters/toy.py) runs under the process runtime in pytester inner sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import toy_manifest

ALL = ["test_health", "test_requirements", "test_generate", "test_determinism", "test_quality", "test_budget"]


def run_suite(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "-rfEs",
        *extra,
    )


def failed_tests(result: pytest.RunResult) -> set[str]:
    names = set()
    for line in result.outlines:
        if line.startswith("FAILED "):
            names.add(line.split(" ")[1].split("::")[-1].split("[")[0])
    return names


def test_healthy_model_passes_everything(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    result = run_suite(pytester, write_suite(toy_manifest()), "-v")
    result.assert_outcomes(passed=6, skipped=1)  # test_build is skipped: the process runtime builds no image
    result.stdout.fnmatch_lines(["*toy.yaml::toy::test_health PASSED*", "*toy.yaml::toy::test_generate[[]fox[]] PASSED*"])


#: the catch table (README "What the generated tests catch"): fault -> the one failing test, its message
ZOO = [
    ("shape", "test_generate", "*shape [[]6, 3, 16, 8[]] does not match expect.shape [[]6, 3, 16, 16[]]*"),
    ("dtype", "test_generate", "*dtype float64 is not expect.dtype float32*"),
    ("nan", "test_generate", "*output has 1 NaN and 0 inf values*"),
    ("range", "test_generate", "*outside expect.range [[]0, 1[]]*"),
    ("nondeterministic", "test_determinism", "*same seed 1 gave different outputs*"),
    ("load_crash", "test_health", "*weights file is corrupt*"),
    ("requirements", "test_requirements", "*adapter needs gpus = 2 but the manifest's resources.gpus is 0*"),
    ("generate_crash", "test_generate", "*illegal memory access*"),
    ("exit", "test_generate", "*exited with code 3*"),
    ("slow", "test_budget", "*median generation time*exceeds expect.budgets.generate_seconds 0.3s*"),
    ("memory", "test_budget", "*peak memory*exceeds expect.budgets.peak_memory 200.0 MiB*"),
    ("constant", "test_quality", "*motion = 0 is below expect.quality.motion.min*"),
    ("ignores_prompt", "test_quality", "*prompt_sensitivity = 0 is below expect.quality.prompt_sensitivity.min*"),
    ("leak", "test_budget", "*memory grows on every call: the adapter's peak RSS rose*"),
    ("flaky", "test_generate", "*answered 500: RuntimeError: upstream returned 503*"),
    ("malformed", "test_generate", "*generate returned a malformed safetensors body*"),
    ("oversized", "test_generate", "*generate output refused: POST /v1/generate answered * bytes, over the limit of *"),
    ("swapped_frames", "test_quality", "*smoothness = * is below expect.quality.smoothness.min = 0.9*"),
    ("chatty", "test_budget", "*the model wrote * MiB of logs per call (*over expect.budgets.log_bytes 1.0 MiB*"),
    ("caching", "test_generate", "*cached answers: each of 3 fresh seeds took *x to *x as long as seed 1 repeated*"),
    ("ignores_seed", "test_generate", "*seeds 1 and 7920, 15839, 23758 gave identical bytes*"),
    ("cheap_repeats", "test_determinism", "*outputs of the timed rounds differ from the checked output: timed round *"),
]


@pytest.mark.parametrize(("fault", "failing", "message"), ZOO)
def test_each_fault_fails_exactly_its_test(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], fault: str, failing: str, message: str
) -> None:
    result = run_suite(pytester, write_suite(toy_manifest(fault=fault)))
    assert failed_tests(result) == {failing}, result.stdout.str()
    result.stdout.fnmatch_lines([message])


def test_never_ready_fails_within_startup_timeout(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(fault="never_ready", timeouts={"startup": "1.5s"}))
    result = run_suite(pytester, suite)
    assert failed_tests(result) == {"test_health"}
    result.stdout.fnmatch_lines(["*not ready within the startup timeout of 1.5s*", "*last container/process logs*"])
    assert result.duration < 30


def test_generate_timeout_fails_generation(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(options={"delay": 3.0}, timeouts={"startup": "20s", "generate": "1s"}, rounds=1))
    result = run_suite(pytester, suite)
    assert failed_tests(result) == {"test_generate"}
    result.stdout.fnmatch_lines(["*generate did not answer within 1s (timeouts.generate)*"])


def test_dependent_tests_skip_with_the_reporting_test_named(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    result = run_suite(pytester, write_suite(toy_manifest(fault="load_crash")))
    result.assert_outcomes(failed=1, skipped=6)
    result.stdout.fnmatch_lines(["*not run: model toy failed in load()*reported by *toy.yaml::toy::test_health)*"])


def test_selecting_only_a_dependent_test_still_fails_on_a_broken_model(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    result = run_suite(pytester, write_suite(toy_manifest(fault="load_crash")), "-k", "test_generate")
    result.assert_outcomes(failed=1, deselected=6)
