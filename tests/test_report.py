"""report.json / report.md / report.html from real inner runs, --vdbench-compare, and the report options."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import toy_manifest

HOSTILE = "a fox <script>alert('x')</script> & friends"


def run(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={suite}",
        "--vdbench-runtime=process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        # a toy call lasts milliseconds, so a loaded machine's scheduling noise is most of it: ask ±50 %
        "--vdbench-precision=0.5",
        *extra,
    )


def three_models(write_suite: Callable[..., Path]) -> Path:
    """alpha passes (at least 4 rounds), beta fails test_budget (slow, capped at 2 rounds: INVALID), gamma is skipped."""
    alpha = toy_manifest("alpha", rounds=4)
    alpha["cases"][0]["prompt"] = HOSTILE  # everything a model or manifest says must be escaped
    return write_suite(
        alpha,
        toy_manifest("beta", fault="slow", rounds=1, timing={"max_rounds": 2}),
        toy_manifest("gamma", requires={"env": ["VDBENCH_TEST_NEVER_SET"]}),
    )


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_a_real_run_writes_json_md_and_html(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    result = run(pytester, three_models(write_suite), "--vdbench-report=rep", "--vdbench-min-duration=0")
    result.assert_outcomes(passed=11, failed=1, skipped=9)
    rep = pytester.path / "rep"
    doc = load(rep / "report.json")
    assert doc["schema_version"] == 3
    rows = {r["id"]: r for r in doc["models"]}
    assert set(rows) == {"alpha", "beta"} and "VDBENCH_TEST_NEVER_SET" in doc["skipped"]["gamma"]

    alpha, beta = rows["alpha"], rows["beta"]
    stats = alpha["timings"]["generate"]["fox"]
    # adaptive rounds: at least 6 (a 95 % interval of the median needs them), every one kept, warmup excluded
    assert stats["rounds"] == len(stats["data"]) >= 6 and stats["warmup_rounds"] == 1 and stats["stopped"] == "precise"
    assert stats["verdict"] == "VALID" and alpha["timing_valid"] and alpha["status"] == "ok"
    assert stats["median"] <= stats["p90"] and stats["iqr"] is not None and stats["headline"] == "round trip"
    assert stats["ci_low"] <= stats["median"] <= stats["ci_high"] and stats["precision"] <= 0.5
    assert 0 < stats["server_median"] <= stats["median"] and alpha["generate_server_seconds_median"] == stats["server_median"]
    assert beta["timings"]["generate"]["fox"]["rounds"] == 2 and not beta["timing_valid"]
    assert beta["timing_reason"].startswith("generate[fox]: capped at 2 rounds (--vdbench-max-rounds); median known to ±")
    marks = [m["label"] for m in alpha["timeline"]["marks"]]
    assert marks[:4] == ["start", "ready", "fox:warmup", "fox:rounds"] and marks[-1] == "stop"
    assert 2 <= len(alpha["timeline"]["t"]) <= 400 and max(alpha["timeline"]["memory_bytes"]) > 0
    assert beta["status"] == "failed" and alpha["failures"] == []
    [failure] = beta["failures"]
    assert failure["test"] == "test_budget[fox]" and "exceeds expect.budgets.generate_seconds 0.3s" in failure["message"]
    assert "POST /v1/generate" in beta["log_tail"]  # the model's own last log lines, kept before it stopped
    assert alpha["quality_by_case"]["fox"]["flicker"] > 0

    prov = alpha["provenance"]
    assert prov["manifest_sha256"] == alpha["manifest_sha256"] and len(prov["manifest_sha256"]) == 64
    assert prov["variant"] == alpha["variant"] == "default" and prov["runtime"] == "process" and prov["adapter"] == "toy:ToyVideo"
    assert prov["cases"] == [{"id": "fox", "prompt": HOSTILE, "seed": 1, "params": {"frames": 6, "height": 16, "width": 16}}]
    assert "libraries" in prov and prov["adapter_python"] and prov["plugin_version"]
    assert prov["host"]["cpus"] >= 1 and prov["host"]["cpu_model"] and prov["machine_id"] == doc["environment"]["machine_id"]
    env = doc["environment"]
    assert (
        env["machine_info"]["node"]
        and "cpu" in env["machine_info"]
        and env["machine_id"].startswith(env["machine_info"]["system"])
    )
    assert "--vdbench-report=rep" in env["command_line"] and env["options"]["min_duration"] == 0
    assert doc["statistics"]["min_rounds"] == 3 and doc["statistics"]["min_duration_seconds"] == 0.0
    assert doc["statistics"]["precision"] == 0.5 and doc["statistics"]["max_duration_seconds"] == 30

    md = (rep / "report.md").read_text()
    assert re.search(r"^\| alpha \|.*\| VALID \|.*\| ok \|$", md, re.M)
    assert re.search(r"^\| beta \|.*\| INVALID \|.*\| failed \|$", md, re.M)
    assert "- **beta**: generate[fox]: capped at 2 rounds" in md
    assert "## Generation timings" in md and "## Throughput" not in md  # no model asked for a load sweep
    assert re.search(
        r"^\| alpha \| fox \| \d+ \| [\d.]+ms \| [\d.]+ms \.\. [\d.]+ms \(±[\d.]+ %\) \| [\d.]+ms \| VALID \|$", md, re.M
    )
    assert "- **beta** `test_budget[fox]`: median generation time" in md
    assert "| gamma |" in md and "skipped: environment variable(s) VDBENCH_TEST_NEVER_SET not set" in md

    html = (rep / "report.html").read_text()
    assert '<table id="models" class="sortable">' in html and html.count("<svg ") == 3 + 2  # 3 bar charts, 2 timelines
    assert html.count('class="chart timeline"') == 2 and 'class="num ci"' in html
    for chart in ("chart-startup_seconds", "chart-generate_seconds_median", "chart-peak_memory_bytes"):
        assert f'id="{chart}"' in html
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)) == 2 * 6  # 6 frames per video
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in html
    assert "exceeds expect.budgets.generate_seconds 0.3s" in html and "POST /v1/generate" in html
    assert "VDBENCH_TEST_NEVER_SET not set" in html and 'class="INVALID"' in html and 'class="VALID"' in html
    result.stdout.fnmatch_lines(
        [
            "*vdbench summary*",
            "alpha *ready *generate *peak *flicker*VALID  ok",
            "beta *ready *generate *peak *INVALID  failed",
        ]
    )


def test_xdist_workers_ship_failures_logs_and_the_html(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("alpha"), toy_manifest("beta", fault="slow"))
    # a hand-doctored baseline: alpha used to generate in a nanosecond, VALID
    fast = {"median": 1e-9, "valid": True, "reason": ""}
    baseline = {"schema_version": 3, "models": [{"id": "alpha", "timings": {"generate": {"fox": fast}}}]}
    (pytester.path / "base.json").write_text(json.dumps(baseline))
    result = run(
        pytester,
        suite,
        "-n",
        "2",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        "--vdbench-report=rep",
        "--vdbench-compare=base.json",
        "--vdbench-min-duration=0",
    )
    result.assert_outcomes(passed=11, failed=1, skipped=2)
    doc = load(pytester.path / "rep" / "report.json")
    rows = {r["id"]: r for r in doc["models"]}
    assert rows["beta"]["failures"][0]["test"] == "test_budget[fox]" and rows["beta"]["log_tail"]
    assert rows["alpha"]["provenance"]["worker"].startswith("gw") and rows["alpha"]["timings"]["generate"]["fox"]["rounds"] >= 6
    assert doc["comparison"]["regressed_models"] == {"alpha": ["generate[fox]"]}  # judged on the controller
    assert rows["beta"]["comparison"]["note"] == "new: not in the previous report"
    result.stdout.fnmatch_lines(["alpha *[[]REGRESSED: generate[[]fox[]][]]", "beta *[[]new: not in the previous report[]]"])
    html = (pytester.path / "rep" / "report.html").read_text()
    assert html.count("<svg ") == 3 + 2 and html.count("data:image/png;base64,") == 12


def doctored(baseline: dict[str, Any], *, generate: float, valid: bool = True, memory_factor: float = 1.0) -> dict[str, Any]:
    doc = copy.deepcopy(baseline)
    row = doc["models"][0]
    stats = row["timings"]["generate"]["fox"]
    scale = generate / stats["median"]  # the rounds move with the median: the comparison reads them
    stats.update(median=generate, valid=valid, reason="" if valid else "generate[fox]: 1 timed round(s) < minimum 3")
    stats["data"] = [v * scale for v in stats["data"]]
    row["peak_memory_bytes"] = int(row["peak_memory_bytes"] * memory_factor)
    return doc


def test_compare_flags_a_regression_and_fails_the_run_only_when_asked(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("alpha", rounds=4))
    common = ("--vdbench-min-duration=0",)
    first = run(pytester, suite, "--vdbench-report=base", *common)
    assert first.ret == pytest.ExitCode.OK
    baseline = load(pytester.path / "base" / "report.json")
    assert baseline["models"][0]["timing_valid"]
    (pytester.path / "slower.json").write_text(json.dumps(doctored(baseline, generate=1e-9)))
    (pytester.path / "faster.json").write_text(json.dumps(doctored(baseline, generate=10.0, memory_factor=4)))
    (pytester.path / "invalid.json").write_text(json.dumps(doctored(baseline, generate=1e-9, valid=False, memory_factor=4)))

    # flagged, but the run passes without --vdbench-fail-on-regression
    flagged = run(pytester, suite, "--vdbench-compare=slower.json", "--vdbench-report=cmp", *common)
    assert flagged.ret == pytest.ExitCode.OK
    flagged.stdout.fnmatch_lines(
        [
            "alpha *VALID  ok  [[]REGRESSED: generate[[]fox[]]*",
            "vdbench: regressions beyond 10% against */slower.json: alpha: generate[[]fox[]]*",
        ]
    )
    assert "exit status 1" not in flagged.stdout.str()
    doc = load(pytester.path / "cmp" / "report.json")
    assert doc["comparison"]["regressed_models"] == {"alpha": ["generate[fox]"]} and doc["comparison"]["threshold"] == 0.1
    [delta] = [d for d in doc["models"][0]["comparison"]["deltas"] if d["metric"] == "generate[fox]"]
    assert delta["regression"] and delta["before"] == 1e-9
    assert re.search(
        r"^\| alpha \| generate\[fox\] \|.*\| \*\*REGRESSION\*\* \|$", (pytester.path / "cmp" / "report.md").read_text(), re.M
    )
    html = (pytester.path / "cmp" / "report.html").read_text()
    assert '<table id="comparison"' in html and "REGRESSED: generate[fox]" in html and 'class="regression"' in html

    # the same comparison with --vdbench-fail-on-regression: exit status 1 and why
    failing = run(pytester, suite, "--vdbench-compare=slower.json", "--vdbench-fail-on-regression", *common)
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.assert_outcomes(passed=6, skipped=1)  # every test passed: the regression alone fails the run
    failing.stdout.fnmatch_lines(["vdbench: exit status 1 because of these regressions (--vdbench-fail-on-regression)"])

    # a baseline this run did not regress against is not flagged, and the run passes
    fine = run(pytester, suite, "--vdbench-compare=faster.json", "--vdbench-fail-on-regression", *common)
    assert fine.ret == pytest.ExitCode.OK
    fine.stdout.fnmatch_lines(["alpha *[[]no regression[]]", "vdbench: no regression beyond 10% against */faster.json"])

    # a slower timing against an INVALID baseline timing is shown with a note, not judged
    invalid = run(
        pytester, suite, "--vdbench-compare=invalid.json", "--vdbench-fail-on-regression", "--vdbench-report=inv", *common
    )
    assert invalid.ret == pytest.ExitCode.OK
    [delta] = [
        d
        for d in load(pytester.path / "inv" / "report.json")["models"][0]["comparison"]["deltas"]
        if d["metric"] == "generate[fox]"
    ]
    assert delta["worse"] and not delta["regression"] and delta["note"].startswith("not judged: previous run's timing is INVALID")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--vdbench-compare=missing.json"],
            "ERROR: --vdbench-compare */missing.json: no such file; give the report.json of an earlier run*",
        ),
        (
            ["--vdbench-compare=old.json"],
            "ERROR: --vdbench-compare */old.json: report schema version 1, this pytest-vdbench reads version 3; re-run*",
        ),
        (["--vdbench-fail-on-regression"], "ERROR: --vdbench-fail-on-regression needs --vdbench-compare PATH*"),
        (["--vdbench-min-rounds=0"], "*argument --vdbench-min-rounds: '0' is not a whole number of rounds >= 1"),
        (["--vdbench-min-duration=soon"], "*argument --vdbench-min-duration: 'soon' is not a duration in seconds >= 0*"),
        (["--vdbench-regression-threshold=0"], "*argument --vdbench-regression-threshold: '0' is not a relative threshold > 0*"),
        (["--vdbench-precision=2"], "*argument --vdbench-precision: '2' is not a relative precision in (0, 1)*"),
        (["--vdbench-max-rounds=none"], "*argument --vdbench-max-rounds: 'none' is not a whole number of rounds >= 1"),
        (["--vdbench-max-duration=-1"], "*argument --vdbench-max-duration: '-1' is not a duration in seconds >= 0*"),
    ],
)
def test_bad_report_options_are_usage_errors(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], args: list[str], message: str
) -> None:
    (pytester.path / "old.json").write_text(json.dumps({"schema_version": 1, "models": []}))
    result = run(pytester, write_suite(toy_manifest()), "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_settings_and_their_validation(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(rounds=1))
    pytester.makeini("[pytest]\nvdbench_min_rounds = two\n")
    bad = run(pytester, suite, "--collect-only")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: ini vdbench_min_rounds = 'two': 'two' is not a whole number of rounds >= 1"])
    pytester.makeini(
        "[pytest]\nvdbench_min_rounds = 2\nvdbench_min_duration = 0s\nvdbench_regression_threshold = 25%\n"
        "vdbench_max_rounds = 500\nvdbench_max_duration = 20s\n"
    )
    good = run(pytester, suite, "--vdbench-report=rep")
    assert good.ret == pytest.ExitCode.OK
    doc = load(pytester.path / "rep" / "report.json")
    assert doc["statistics"]["min_rounds"] == 2 and doc["environment"]["options"]["regression_threshold"] == 0.25
    assert doc["statistics"]["max_duration_seconds"] == 20 and doc["statistics"]["max_rounds"] == 500
    assert doc["models"][0]["timing_valid"]
    # the command line wins over the ini: two rounds cannot pin the median down
    stricter = run(pytester, suite, "--vdbench-report=rep2", "--vdbench-max-rounds=2")
    row = load(pytester.path / "rep2" / "report.json")["models"][0]
    assert not row["timing_valid"] and "capped at 2 rounds (--vdbench-max-rounds)" in row["timing_reason"]
    assert stricter.ret == pytest.ExitCode.OK
