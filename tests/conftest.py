"""Shared helpers for the plugin's tests: suites of toy-model manifests for pytester sessions."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ADAPTERS = Path(__file__).parent / "adapters"
ROOT = Path(__file__).parent.parent
# the toy manifests' image.context (tests/adapters, containers/) and datasets (model_suites/) lie outside the
# pytester projects they run in: allowed the way a user allows a folder (--vdbench-allow-path's
# environment form, inherited by inner sessions)
os.environ.setdefault(
    "VDBENCH_ALLOW_PATH", os.pathsep.join(str(p) for p in (ADAPTERS, ROOT / "model_suites", ROOT / "containers"))
)


def docker_or_skip() -> None:
    """Skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1), where it is a failure."""
    from pytest_vdbench.runtime.docker import docker_unavailable

    reason = docker_unavailable()
    if reason:
        if os.environ.get("VDBENCH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"VDBENCH_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)


def containers(*models: str) -> list[str]:
    """Ids of the containers (any state) that carry one of ``models`` as their org.vdbench.model label."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=org.vdbench.model", "--format", '{{.ID}} {{.Label "org.vdbench.model"}}'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [cid for cid, _, model in (line.partition(" ") for line in out.splitlines()) if model in models]


def toy_manifest(name: str = "toy", fault: str = "none", **overrides: Any) -> dict[str, Any]:
    """A valid manifest for tests/adapters/toy.py; ``overrides`` replace top-level keys."""
    doc: dict[str, Any] = {
        "name": name,
        "modality": "video",
        "adapter": "toy:ToyVideo",
        "options": {"fault": fault},
        "image": {"context": str(ADAPTERS), "base": "bookworm"},
        "resources": {"cpus": 1, "memory": "512m"},
        "timeouts": {"startup": "20s", "generate": "10s"},
        "rounds": 2,
        "cases": [{"id": "fox", "prompt": "a fox in the snow", "seed": 1, "params": {"frames": 6, "height": 16, "width": 16}}],
        "expect": {
            "shape": [6, 3, 16, 16],
            "dtype": "float32",
            "range": [0, 1],
            "budgets": {"generate_seconds": 0.3, "peak_memory": "200m"},
            "quality": {
                "dynamic_degree": {"min": 0.001},
                "prompt_sensitivity": {"min": 0.01},
                "motion_smoothness": {"min": 0.9},
            },
        },
    }
    if fault == "leak":  # 48 MiB kept per call: bound the adaptive rounds
        doc["timing"] = {"max_rounds": 6}
    doc.update(overrides)
    return doc


@pytest.fixture
def write_suite(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write manifests (dicts or raw YAML text) into ``<pytester>/suite/`` and return that folder."""

    def write(*manifests: dict[str, Any] | str, names: list[str] | None = None) -> Path:
        suite = pytester.path / "suite"
        suite.mkdir(exist_ok=True)
        for i, manifest in enumerate(manifests):
            text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False)
            name = names[i] if names else (manifest["name"] if isinstance(manifest, dict) else f"m{i}")
            (suite / f"{name}.yaml").write_text(text)
        return suite

    return write
