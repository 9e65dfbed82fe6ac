"""Cog and OIP v2 images for real: failures of unchanged Cog/MLServer images map onto the generated tests.

The green path is ``model_suites/protocols`` (run by ``pytest --vdbench`` in CI); here each model is
broken in one way and must fail exactly the test that names the cause. Marked ``docker``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, containers, docker_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]

COG = str(ROOT / "containers" / "cog-example")
OIP = str(ROOT / "containers" / "oip-example")


@pytest.fixture(autouse=True)
def _engine() -> None:
    docker_or_skip()


def manifest(name: str, protocol: str, context: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "modality": "video",
        "protocol": protocol,
        "image": {"context": context, "base": "bookworm"},
        "resources": {"cpus": 1, "memory": "512m"},
        "timeouts": {"startup": "30s", "generate": "20s"},
        "rounds": 1,
        "warmup_rounds": 0,
        "cases": [{"id": "fox", "prompt": "a fox", "seed": 1, "params": {"frames": 8, "height": 32, "width": 32}}],
        "expect": {"shape": [8, 3, 32, 32], "dtype": "float32", "range": [0, 1]},
    }
    doc.update(overrides)
    return doc


def test_broken_cog_and_oip_images_fail_the_test_that_names_the_cause(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(
        # Cog's setup() raises: readiness fails at once with Cog's setup logs, not after the timeout
        manifest("pcog-setup", "cog", COG, adapter="broken_predict.py:Predictor", timeouts={"startup": "120s"}),
        # the predictor works, but the manifest grants less than it declares and expects 9 frames
        manifest(
            "pcog-misfit",
            "cog",
            COG,
            adapter="predict.py:Predictor",
            cog={"requirements": {"memory": "1g"}},
            # frames left to the predictor's default (8): only the running model shows the mismatch (a case
            # asking for 8 frames against 9 expected is a collection error, vdbench validate's)
            cases=[{"id": "fox", "prompt": "a fox", "seed": 1, "params": {"height": 32, "width": 32}}],
            expect={"shape": [9, 3, 32, 32], "dtype": "float32"},
        ),
        # the case sends an input the predictor does not take: Cog's error reaches test_generate
        manifest(
            "pcog-input",
            "cog",
            COG,
            adapter="predict.py:Predictor",
            cases=[{"id": "fox", "prompt": "a fox", "seed": 1, "params": {"steps": 4}}],
        ),
        # MLServer serves no model by that name: never ready; and a wrong output tensor name
        manifest("poip-nomodel", "oip-v2", OIP, oip={"model": "nosuch"}, timeouts={"startup": "8s"}),
        manifest("poip-output", "oip-v2", OIP, oip={"model": "toyvideo", "output": "frames"}, resources={"memory": "768m"}),
        # the model's load() raises: MLServer exits, and its log (the traceback) is in the failure
        manifest("poip-load", "oip-v2", OIP, oip={"model": "toyvideo"}, command=["mlserver", "start", "/srv/broken"]),
    )
    result = pytester.runpytest_subprocess(
        "--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=docker", "-p", "no:cacheprovider", "-rfEs", timeout=600
    )
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "FAILED *pcog-input.yaml::pcog-input::test_generate[[]fox[]]*",
            "FAILED *pcog-misfit.yaml::pcog-misfit::test_requirements*",
            "FAILED *pcog-misfit.yaml::pcog-misfit::test_generate[[]fox[]]*",
            "FAILED *pcog-setup.yaml::pcog-setup::test_health*",
            "FAILED *poip-load.yaml::poip-load::test_health*",
            "FAILED *poip-nomodel.yaml::poip-nomodel::test_health*",
            "FAILED *poip-output.yaml::poip-output::test_generate[[]fox[]]*",
        ]
    )
    # Cog's setup failure: its status and setup logs, at once (not the 120s timeout)
    assert "container of pcog-setup failed in Cog's setup()" in out
    assert "Cog reports SETUP_FAILED" in out
    assert "FileNotFoundError: /weights/model.safetensors: the checkpoint is missing" in out
    assert "not ready within" not in out.split("pcog-setup")[1].split("pcog-misfit")[0]
    # declared requirements are checked, and the message says where they came from
    assert "requirements from the manifest cog.requirements (the cog protocol has no requirements endpoint)" in out
    assert "needs memory = 1.0 GiB but the manifest's resources.memory is 512.0 MiB" in out
    assert "shape [8, 3, 32, 32] does not match expect.shape [9, 3, 32, 32]" in out
    assert "prediction failed" in out and "unexpected keyword argument 'steps'" in out
    assert "not ready within the startup timeout of 8s" in out and "/v2/models/nosuch/ready answered" in out
    assert "outputs ['video'], none named 'frames'" in out
    assert "container of poip-load exited before it was ready" in out
    assert "FileNotFoundError: /weights/toyvideo.bin: the checkpoint is missing" in out
    # every other test of a broken model skips naming the test that reported it; nothing is left running
    assert "not run: " in out
    failed = result.parseoutcomes().get("failed", 0)
    assert failed == 7, out[-3000:]
    assert containers(*(p.stem for p in suite.glob("*.yaml"))) == []  # write_suite names files by model
