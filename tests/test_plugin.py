"""Plugin wiring: options, --help, off by default, filters, skips, user tests with public fixtures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import toy_manifest


def test_help_shows_the_vdbench_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["vdbench: benchmark and validate containerised generative models:", "*--vdbench-runtime=RUNTIME*"]
    )


def test_without_flag_the_plugin_adds_nothing(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    write_suite(toy_manifest())
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_bad_runtime_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-runtime", "kubernetes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown runtime 'kubernetes'; valid runtimes: docker, process*"])


def test_missing_suite_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vdbench-suite: */nowhere does not exist; give a suite directory or a manifest file"])


def test_model_filter_and_unknown_model(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta"))
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-q", "--vdbench-model", "be*"
    )
    result.stdout.fnmatch_lines(["suite/beta.yaml::beta::test_health"])
    assert "alpha" not in result.stdout.str()
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--vdbench-model", "gamma")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vdbench-model gamma: no model matches; known models: alpha, beta"])


def test_variant_ids_and_variant_filter(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(variants={"tiny": {}, "full": {"rounds": 5}}))
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-q", "--vdbench-variant", "tiny"
    )
    result.stdout.fnmatch_lines(["suite/toy.yaml::toy-tiny::test_generate[[]fox[]]"])
    assert "toy-full" not in result.stdout.str()


def test_vdbench_alone_runs_only_the_suites(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest())
    pytester.makepyfile(test_mine="def test_mine(): pass")
    only_suite = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-q")
    assert "test_mine" not in only_suite.stdout.str()
    with_mine = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-q", "test_mine.py")
    with_mine.stdout.fnmatch_lines(["test_mine.py::test_mine"])


def test_gpu_model_is_skipped_with_exact_reason(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = toy_manifest(
        requires={"gpu": True, "weights": [{"repo": "THUDM/CogVideoX-2b"}]}, resources={"gpus": 1, "gpu_memory": "24g"}
    )
    suite = write_suite(doc)
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "process", "-rs", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(
        [
            "*toy: needs 1 GPU(s) with 24.0 GiB each; this host has none (*)"
            "*weights THUDM/CogVideoX-2b not found in the Hugging Face cache*"
        ]
    )


def test_missing_api_key_skips(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIKA_API_KEY", raising=False)
    suite = write_suite(toy_manifest(requires={"env": ["PIKA_API_KEY"]}))
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "process", "-rs")
    result.stdout.fnmatch_lines(["*environment variable(s) PIKA_API_KEY not set*"])


def test_user_tests_use_public_fixtures(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta"))
    pytester.makepyfile(
        test_extra="""
        import pytest

        def test_two_frames(vdbench_model, vdbench_client):
            out = vdbench_client.generate("x", seed=3, params={"frames": 2, "height": 8, "width": 8}).output
            assert out.shape == (2, 3, 8, 8)
            assert vdbench_client.endpoint.host == "127.0.0.1"

        @pytest.mark.vdbench_models("beta")
        def test_only_beta(vdbench_model):
            assert vdbench_model.name == "beta"
        """
    )
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "test_extra.py",
        "-k",
        "test_extra",
        "-v",
        "-p",
        "no:cacheprovider",
    )
    for line in (
        "*test_two_frames[[]alpha[]] PASSED*",
        "*test_two_frames[[]beta[]] PASSED*",
        "*test_only_beta[[]beta[]] PASSED*",
    ):
        result.stdout.fnmatch_lines([line])
    result.assert_outcomes(passed=3)


def test_fixtures_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures")
    result.stdout.fnmatch_lines(
        ["vdbench_model [[]module scope[]]*", "*The model (variant) under test*", "vdbench_client [[]module scope[]]*"]
    )


def test_fallback_to_process_without_docker(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    suite = write_suite(toy_manifest(expect={"shape": [6, 3, 16, 16]}))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "-p",
        "no:cacheprovider",
        "-k",
        "health",
        "--benchmark-disable",
    )
    result.stdout.fnmatch_lines(
        ["vdbench: no Docker engine answers at unix:///nonexistent/docker.sock (*); running models as local processes instead*"]
    )
    result.assert_outcomes(passed=1, deselected=6)


def test_explicit_docker_without_engine_skips_saying_so(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    suite = write_suite(toy_manifest())
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker", "-rs")
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(["*--vdbench-runtime docker: no Docker engine answers at unix:///nonexistent/docker.sock*"])


def test_xdist_keeps_each_model_on_one_worker(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta"), toy_manifest("gamma"))
    pytester.makepyfile(
        conftest="""
        import os
        WHO = ["main"]
        def pytest_configure(config):
            # not PYTEST_XDIST_WORKER: an outer `-n` run sets it for this whole inner run, controller included
            if hasattr(config, "workerinput"):
                WHO[0] = config.workerinput["workerid"]
        def pytest_runtest_logreport(report):
            if report.when == "call":
                with open(os.path.join(os.environ["OUT"], WHO[0]), "a") as fh:
                    fh.write(report.nodeid + "\\n")
        """
    )
    out = pytester.path / "out"
    out.mkdir()
    pytester._monkeypatch.setenv("OUT", str(out))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        "-v",
    )
    result.assert_outcomes(passed=18, skipped=3)
    # the plugin switched `-n 2` to --dist loadgroup: xdist tags every node id with its model's group
    result.stdout.fnmatch_lines(["*suite/alpha.yaml::alpha::test_health@alpha*"])
    workers = [f for f in out.iterdir() if f.name.startswith("gw")]  # "main": the controller's copy of every report
    assert workers, sorted(f.name for f in out.iterdir())  # else the check below checks nothing
    for worker_file in workers:
        models = {line.split("::")[1] for line in worker_file.read_text().splitlines()}
        for model in models:  # a model seen on this worker is seen on no other
            others = [f for f in workers if f != worker_file and f"::{model}::" in f.read_text()]
            assert not others, f"{model} ran on {worker_file.name} and {others}"


def test_benchmark_json_merges_xdist_workers(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta"))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        "--vdbench-benchmark-json",
        "bench.json",
    )
    result.assert_outcomes(passed=12, skipped=2)
    import json

    doc = json.loads((pytester.path / "bench.json").read_text())
    names = {b["name"] for b in doc["benchmarks"]}
    assert {"startup[alpha]", "startup[beta]", "generate[alpha-fox]", "generate[beta-fox]"} <= names
    gen = next(b for b in doc["benchmarks"] if b["name"] == "generate[alpha-fox]")
    # the adaptive timed rounds only (at least the 3 a VALID timing needs); warmup and audit calls excluded
    assert gen["stats"]["rounds"] == len(gen["stats"]["data"]) >= 3
    assert gen["extra_info"]["worker"].startswith("gw") and "concurrent_models" in gen["extra_info"]
    assert {"machine_info", "commit_info", "datetime", "version"} <= set(doc)
    compare = pytester.run(sys.executable, "-m", "pytest_benchmark.cli", "compare", str(pytester.path / "bench.json"))
    assert compare.ret == 0, compare.stdout.str()


def test_process_runtime_skips_models_whose_libraries_live_in_their_image(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("imgonly", adapter="needs_missing:NeedsMissing"))
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "process", "-rs", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(
        [
            "*imgonly: the process runtime uses this Python environment, which lacks "
            "'vdbench_lib_only_in_the_image'*--vdbench-runtime docker*"
        ]
    )


def test_process_runtime_still_fails_a_broken_adapter_module(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("typo", adapter="toyy:ToyVideo"))  # the adapter module itself is missing
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "process")
    result.assert_outcomes(failed=1, skipped=6)
    result.stdout.fnmatch_lines(["*No module named 'toyy'*"])


def test_report_and_summary_merge_xdist_workers(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta"))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        "--vdbench-report",
        "rep",
    )
    result.stdout.fnmatch_lines(["*vdbench summary*", "alpha *ready*ok", "beta *ready*ok"])
    import json

    rows = json.loads((pytester.path / "rep" / "report.json").read_text())["models"]
    assert [r["id"] for r in rows] == ["alpha", "beta"] and all(r["startup_seconds"] for r in rows)


def test_report_keeps_each_video_as_a_gif_with_its_settings(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("gifme"))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "process",
        "-p",
        "no:cacheprovider",
        "--vdbench-report",
        "rep",
        "--benchmark-disable",
    )
    result.assert_outcomes(passed=6, skipped=1)
    import json

    from PIL import Image

    with Image.open(pytester.path / "rep" / "media" / "gifme-fox.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (128, 128)  # 16x16 frames enlarged 8x
    info = json.loads((pytester.path / "rep" / "media" / "gifme-fox.json").read_text())
    assert info["prompt"] == "a fox in the snow" and info["seed"] == 1 and info["shape"] == [6, 3, 16, 16]


def test_option_value_that_is_a_folder_does_not_move_the_project_root(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import yaml

    (pytester.path / "model_suites" / "video").mkdir(parents=True)
    (pytester.path / "model_suites" / "video" / "toy.yaml").write_text(yaml.safe_dump(toy_manifest()))
    elsewhere = tmp_path_factory.mktemp("existing-report-dir")
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-report", str(elsewhere), "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*toy.yaml::toy::test_health"])
