"""#6 end to end: ``pytest --vdbench -n 4`` over the reference model and three cheap ones, in containers.

The three toy models share one build context (a fresh content hash per run), so across four
workers their image must be built exactly once and reused twice; the report's build column shows it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers import ADAPTERS, ROOT, containers, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_four_workers_build_each_image_once_and_leave_nothing(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    docker_or_skip()
    context = pytester.path / "toyctx"
    shutil.copytree(ADAPTERS, context)
    (context / "nonce.txt").write_text(uuid.uuid4().hex)  # a hash no earlier run has built
    toys = [toy_manifest(f"xd{i}", image={"context": str(context), "base": "bookworm"}) for i in range(3)]
    ref = yaml.safe_load((ROOT / "model_suites" / "video" / "refvideo.yaml").read_text())
    ref["image"]["context"] = str(ROOT / "containers" / "refvideo")
    suite = write_suite(ref, *toys)
    result = pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={suite}",
        "--vdbench-runtime=docker",
        "-n",
        "4",
        "-p",
        "no:cacheprovider",
        "-rfEs",
        "--vdbench-report=rep",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
        timeout=900,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()
    rows = {r["id"]: r for r in json.loads((pytester.path / "rep" / "report.json").read_text())["models"]}
    assert set(rows) >= {"refvideo", "xd0", "xd1", "xd2"} and all(r["status"] == "ok" for r in rows.values())
    toy_rows = [rows[f"xd{i}"] for i in range(3)]
    assert len({r["image"].split(":")[1] for r in toy_rows}) == 1  # one content hash (tagged per model)
    assert len({r["image_id"] for r in toy_rows}) == 1  # one image
    assert sorted(r["build_cached"] for r in toy_rows) == [False, True, True]  # built once, reused twice
    assert len({r["provenance"]["worker"] for r in rows.values()}) >= 2  # really spread over workers
    report_md = (pytester.path / "rep" / "report.md").read_text()
    assert report_md.count("(cached)") >= 2
    assert containers("refvideo", "xd0", "xd1", "xd2") == []
