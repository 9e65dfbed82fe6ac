"""Metric containers (``kind: metric``): the SDK's POST /v1/score and the harness around it.

A toy scorer (tests/adapters/toy_scorer.py) runs under the process runtime; each fault must fail
test_quality alone, with the scorer's own words, and leave the model's other tests passing.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import ADAPTERS, toy_manifest, toy_scorer_manifest
from pytest_vdbench.adapter.metric import check_scores, not_computed, score
from pytest_vdbench.adapter.server import make_server
from pytest_vdbench.manifest import ManifestError, load_manifest
from pytest_vdbench.protocols.native import AdapterClient, AdapterError
from pytest_vdbench.runtime import Endpoint

RUN = ("--vdbench", "--vdbench-runtime", "process", "-p", "no:cacheprovider", "--benchmark-disable", "-rs")


# -- the SDK ------------------------------------------------------------------------------------


@pytest.fixture
def scorer_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], AdapterClient]]:
    """Serve tests/adapters/toy_scorer.py in this process with a given fault; yields a client factory."""
    monkeypatch.syspath_prepend(str(ADAPTERS))
    servers: list[Any] = []

    def start(fault: str) -> AdapterClient:
        server = make_server("toy_scorer:ToyScorer", "127.0.0.1", 0, {"fault": fault})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        client = AdapterClient(Endpoint("127.0.0.1", server.server_address[1]), timeout=10)
        state = server.app.state
        for _ in range(200):  # load() runs in a background thread: wait for its outcome
            if state.status != "loading":
                break
            threading.Event().wait(0.01)
        return client

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _video() -> np.ndarray[Any, Any]:
    frames = np.zeros((4, 3, 8, 8), dtype=np.float32)
    frames[1::2] = 0.25  # mean |difference| 0.25 -> steadiness 0.75
    return frames


def test_score_endpoint_answers_named_scores_with_range_and_direction(scorer_server: Callable[[str], AdapterClient]) -> None:
    scores = scorer_server("none").score(_video(), "a fox", {"id": "fox"})
    assert scores["steadiness"] == {"value": pytest.approx(0.75), "range": [0.0, 1.0], "direction": "higher"}
    assert scores["needs_weights"]["value"] is None
    assert scores["needs_weights"]["error"] == "not computed: missing /weights/toy/w.pth"


def test_score_endpoint_answers_a_nan_with_an_error_naming_the_score(scorer_server: Callable[[str], AdapterClient]) -> None:
    with pytest.raises(AdapterError, match=r"answered 500: ValueError: the scorer returned nan for steadiness"):
        scorer_server("nan").score(_video(), "a fox", {})


def test_score_endpoint_reports_the_scorers_exception(scorer_server: Callable[[str], AdapterClient]) -> None:
    with pytest.raises(AdapterError, match=r"answered 500: RuntimeError: toy scorer exploded on case fox \(on purpose\)"):
        scorer_server("crash").score(_video(), "a fox", {"id": "fox"})


def test_a_model_adapter_has_no_score_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ADAPTERS))
    server = make_server("toy:ToyVideo", "127.0.0.1", 0, {})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AdapterClient(Endpoint("127.0.0.1", server.server_address[1]), timeout=10)
        with pytest.raises(AdapterError, match="is not a metric adapter: it has no score"):
            client.score(_video(), "", {})
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({}, "non-empty mapping"),
        ({"x": 0.5}, "is not a record"),
        ({"x": {"value": None}}, "no value and no error"),
        ({"x": {"value": "high"}}, "is not a number"),
    ],
)
def test_check_scores_rejects_what_is_not_a_score(returned: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_scores(returned)


def test_score_records() -> None:
    assert score(0.5, (0, 2), "lower") == {"value": 0.5, "range": [0.0, 2.0], "direction": "lower"}
    assert not_computed("missing w")["error"] == "not computed: missing w"
    with pytest.raises(ValueError, match="direction 'up'"):
        score(0.5, direction="up")


# -- manifests ----------------------------------------------------------------------------------


def _load(tmp_path: Path, doc: dict[str, Any]) -> Any:
    import yaml

    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_manifest(path, tmp_path)


def test_metric_manifest_needs_no_cases_and_takes_none(tmp_path: Path) -> None:
    (spec,) = _load(tmp_path, toy_scorer_manifest())
    assert spec.manifest.kind == "metric" and spec.manifest.cases == []
    with pytest.raises(ManifestError, match="takes no cases"):
        _load(tmp_path, toy_scorer_manifest(cases=[{"id": "a"}]))
    with pytest.raises(ManifestError, match="a model needs at least one case"):
        _load(tmp_path, toy_manifest(cases=[]))


# -- the harness (process runtime) --------------------------------------------------------------


def _bounded(**bounds: Any) -> dict[str, Any]:
    doc = toy_manifest(rounds=1)
    doc["expect"] = {**doc["expect"], "quality": {**bounds}}
    return doc


def test_metric_manifests_are_not_collected_as_models(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(), toy_scorer_manifest())
    result = pytester.runpytest("--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*toy.yaml::toy::test_quality[[]fox[]]*"])
    result.stdout.no_fnmatch_line("*toyscore*")


def test_scores_join_the_quality_columns_and_bounds_apply(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    suite = write_suite(_bounded(**{"toyscore.steadiness": {"min": 0.5}}), toy_scorer_manifest())
    report = tmp_path / "report"
    result = pytester.runpytest(
        *RUN, "--vdbench-suite", str(suite), "--vdbench-metrics=toyscore", "--vdbench-report", str(report)
    )
    result.assert_outcomes(passed=6, skipped=1)
    row = json.loads((report / "report.json").read_text())["models"][0]
    steadiness = row["quality_by_case"]["fox"]["toyscore.steadiness"]
    assert 0.5 < steadiness < 1 and math.isfinite(steadiness)
    notes = {k: v for k, v in row["quality_notes_by_case"]["fox"].items() if k.startswith("toyscore.")}
    assert notes == {"toyscore.needs_weights": "missing /weights/toy/w.pth"}
    assert row["metric_containers"][0]["name"] == "toyscore"
    assert "toyscore.needs_weights" in (report / "report.md").read_text()
    assert "not computed: missing /weights/toy/w.pth" in (report / "report.html").read_text()


def test_a_bound_on_a_scorer_score_can_fail(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(_bounded(**{"toyscore.steadiness": {"min": 0.999}}), toy_scorer_manifest())
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "--vdbench-metrics", "toyscore")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*toyscore.steadiness = 0.9* is below expect.quality.toyscore.steadiness.min = 0.999*"])


def test_a_bound_on_a_score_the_scorer_could_not_compute_fails_with_its_reason(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(_bounded(**{"toyscore.needs_weights": {"min": 0.1}}), toy_scorer_manifest())
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "--vdbench-metrics", "toyscore")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*'toyscore.needs_weights' is bounded by expect.quality but was not computed: missing /weights/toy/w.pth"]
    )


@pytest.mark.parametrize(
    ("fault", "timeouts", "message"),
    [
        (
            "crash",
            None,
            "*metric container toyscore: POST /v1/score answered 500: RuntimeError: toy scorer exploded on case fox*",
        ),
        (
            "nan",
            None,
            "*metric container toyscore: POST /v1/score answered 500: ValueError: the scorer returned nan for steadiness*",
        ),
        (
            "slow",
            {"startup": "20s", "score": "1s"},
            "*metric container toyscore: score did not answer within 1s (timeouts.score)*",
        ),
        ("load_crash", None, "*metric container toyscore is not ready: model toyscore failed in load():*"),
        ("out_of_range", None, "*toyscore.steadiness = 7 lies outside the range [[]0, 1[]] it declares*"),
    ],
)
def test_a_broken_scorer_fails_test_quality_only(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], fault: str, timeouts: dict[str, str] | None, message: str
) -> None:
    scorer = toy_scorer_manifest(fault=fault, **({"timeouts": timeouts} if timeouts else {}))
    suite = write_suite(_bounded(), scorer)
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "--vdbench-metrics", "toyscore")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*_ test_quality[[]fox[]] _*", message])


def test_a_model_manifest_enables_a_scorer_for_itself(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(
        _bounded(**{"toyscore.steadiness": {"max": 0.01}}) | {"metrics": ["toyscore"]},
        toy_manifest("other", rounds=1),
        toy_scorer_manifest(),
    )
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "-k", "quality")
    result.assert_outcomes(passed=1, failed=1)  # `other` is not scored: its quality test passes
    result.stdout.fnmatch_lines(["*_ test_quality[[]fox[]] _*", "toyscore.steadiness = * is above*"])


def test_unknown_metric_names_fail_the_run_or_the_manifest(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(), toy_scorer_manifest())
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "--vdbench-metrics", "toyscore,clip")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vdbench-metrics / ini vdbench_metrics: no metric container 'clip'; known: toyscore*"])
    suite = write_suite(toy_manifest(metrics=["nope"]))  # in a manifest: that manifest's one test fails
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["suite/toy.yaml:*: metrics: no metric container 'nope'; known: toyscore*"])


def test_ini_vdbench_metrics_enables_them(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(_bounded(**{"toyscore.steadiness": {"min": 0.999}}), toy_scorer_manifest())
    pytester.makeini("[pytest]\nvdbench_metrics = toyscore\n")
    result = pytester.runpytest(*RUN, "--vdbench-suite", str(suite), "-k", "quality")
    result.assert_outcomes(failed=1)


def test_without_docker_metric_containers_are_skipped_with_the_reason(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    suite = write_suite(_bounded(**{"toyscore.steadiness": {"min": 0.5}}), toy_scorer_manifest())
    args = ["--vdbench", "--vdbench-suite", str(suite), "-p", "no:cacheprovider", "-k", "quality", "-rs"]
    result = pytester.runpytest_subprocess(*args, "--vdbench-metrics", "toyscore")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*vdbench: metric container toyscore skipped: no Docker engine answers at unix:///nonexistent/docker.sock*"
            "metric containers need Docker*",
            "SKIPPED*bounds on toyscore.steadiness not checked (the other scores pass): metric container toyscore: *",
        ]
    )
