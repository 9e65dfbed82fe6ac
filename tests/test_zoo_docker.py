"""The fault zoo in containers: every broken adapter fails exactly its test, the healthy one nothing.

The same catch table as tests/test_conformance.py (process runtime), here under the docker runtime
that CI uses by default, in one inner session over pytest-xdist: container logs, OOM and exit
codes come from the engine, and no container may remain.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from test_conformance import ZOO

from helpers import containers, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def failed_by_model(result: pytest.RunResult) -> dict[str, set[str]]:
    failed: dict[str, set[str]] = defaultdict(set)
    for line in result.outlines:
        if line.startswith("FAILED "):
            parts = line.split(" ")[1].split("::")  # suite/<model>.yaml::<model>::<test>[case]
            failed[parts[1]].add(parts[-1].split("[")[0].split("@")[0])
    return dict(failed)


def test_catch_table_in_containers(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    docker_or_skip()
    manifests = [toy_manifest("zoo-healthy")]
    # 1 GiB: the memory fault holds ~512 MiB at its peak, over the 200 MiB budget but not OOM-killed
    # (the OOM kill has its own test in test_docker_runtime.py)
    manifests += [
        toy_manifest(f"zoo-{fault.replace('_', '-')}", fault=fault, resources={"cpus": 1, "memory": "1g"}) for fault, _, _ in ZOO
    ]
    manifests.append(toy_manifest("zoo-hang-load", fault="never_ready", timeouts={"startup": "4s", "generate": "10s"}))
    manifests.append(
        toy_manifest("zoo-hang-generate", options={"delay": 5.0}, timeouts={"startup": "20s", "generate": "2s"}, rounds=1)
    )
    # OOM-killed on a later call (the one test_quality makes for prompt sensitivity): still test_budget's alone
    manifests.append(toy_manifest("zoo-oom", fault="memory", resources={"cpus": 1, "memory": "512m"}))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={write_suite(*manifests)}",
        "--vdbench-runtime=docker",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "-rfEs",
        "--vdbench-report=rep",
        timeout=900,
    )
    expected = {f"zoo-{fault.replace('_', '-')}": {failing} for fault, failing, _ in ZOO}
    expected["zoo-hang-load"] = {"test_health"}
    expected["zoo-hang-generate"] = {"test_generate"}
    expected["zoo-oom"] = {"test_budget"}
    failed = failed_by_model(result)
    wrong = {m: (failed.get(m, set()), expected.get(m, set())) for m in set(failed) | set(expected)}
    wrong = {m: pair for m, pair in wrong.items() if pair[0] != pair[1]}
    assert not wrong, f"(failed, expected) per model: {wrong}\n{result.stdout.str()}"  # zoo-healthy: none
    for _, _, message in ZOO:
        result.stdout.fnmatch_lines([message])
    result.stdout.fnmatch_lines(["*not ready within the startup timeout of 4s*", "*last container/process logs*"])
    result.stdout.fnmatch_lines(["*generate did not answer within 2s (timeouts.generate)*"])
    result.stdout.fnmatch_lines(["*OOM-killed at limit 512.0 MiB (resources.memory)*"])
    # the report keeps each broken model's last container logs (read before the container went away)
    rows = {r["id"]: r for r in json.loads((pytester.path / "rep" / "report.json").read_text())["models"]}
    assert "weights file is corrupt" in rows["zoo-load-crash"]["log_tail"]
    assert "upstream returned 503" in rows["zoo-flaky"]["log_tail"]
    assert rows["zoo-healthy"]["status"] == "ok" and rows["zoo-oom"]["status"] == "OOM-killed"
    assert "zoo-load-crash" in (pytester.path / "rep" / "report.html").read_text()
    assert containers(*(m["name"] for m in manifests)) == [], "containers left behind"
