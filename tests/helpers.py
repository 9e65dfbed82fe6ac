"""Helpers for the plugin's tests (imported as ``from helpers import ...``; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Protocol

import pytest

__all__ = [
    "ADAPTERS", "REGISTRY", "ROOT", "RunVdbench", "containers", "docker_or_skip", "slurm_jobs", "slurm_or_skip",
    "toy_manifest", "toy_scorer_manifest",
]  # fmt: skip

ADAPTERS = Path(__file__).parent / "adapters"
ROOT = Path(__file__).parent.parent
# the toy manifests' image.context (tests/adapters, containers/) and datasets (model_suites/) lie outside the
# pytester projects they run in: allowed the way a user allows a folder (--vdbench-allow-path's
# environment form, inherited by inner sessions)
os.environ.setdefault(
    "VDBENCH_ALLOW_PATH", os.pathsep.join(str(p) for p in (ADAPTERS, ROOT / "model_suites", ROOT / "containers"))
)


class RunVdbench(Protocol):
    """The ``run_vdbench`` fixture: ``run_vdbench(*args, suite=PATH, runtime="process")`` -> the inner run's result."""

    def __call__(self, *args: str | Path, suite: Path | None = None, runtime: str | None = "process") -> pytest.RunResult: ...


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT: Ctrl-C's default, whatever this process inherited.

    A shell without job control starts ``cmd &`` with SIGINT ignored; the child inherits that, and
    Python then installs no KeyboardInterrupt handler, so the signal the test sends does nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def docker_or_skip() -> None:
    """Skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1), where it is a failure."""
    from pytest_vdbench.runtime.docker import docker_unavailable

    reason = docker_unavailable()
    if reason:
        if os.environ.get("VDBENCH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"VDBENCH_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)


REGISTRY = os.environ.get("VDBENCH_REGISTRY", "127.0.0.1:5077")  # scripts/start-slurm.sh's registry


def slurm_or_skip() -> None:
    """Skip without the test cluster, except in CI (VDBENCH_REQUIRE_SLURM=1), where it is a failure."""
    from pytest_vdbench.runtime.registry import parse_registry
    from pytest_vdbench.runtime.slurm import slurm_unavailable

    reason = slurm_unavailable()
    if reason is None and (why := parse_registry(REGISTRY).unreachable()) is not None:
        reason = f"{why} (VDBENCH_REGISTRY; scripts/start-slurm.sh starts one)"
    if reason:
        if os.environ.get("VDBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"VDBENCH_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


def slurm_jobs(model: str) -> list[str]:
    """Ids of queued or running Slurm jobs of ``model`` (their --comment names it)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True).stdout
    return [job for job, _, comment in (line.partition("|") for line in out.splitlines()) if f"model={model}" in comment.split()]


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
                "motion": {"min": 0.001},
                "prompt_sensitivity": {"min": 0.01},
                "smoothness": {"min": 0.9},
            },
        },
    }
    if fault == "leak":  # 48 MiB kept per call: bound the adaptive rounds
        doc["timing"] = {"max_rounds": 6}
    if fault == "chatty":  # 2 MiB of logs per call: hundreds of fast rounds outrun the engine's log stream
        doc["timing"] = {"max_rounds": 6}
    doc.update(overrides)
    return doc


def toy_scorer_manifest(name: str = "toyscore", fault: str = "none", **overrides: Any) -> dict[str, Any]:
    """A kind: metric manifest for tests/adapters/toy_scorer.py; ``overrides`` replace top-level keys."""
    doc: dict[str, Any] = {
        "name": name,
        "kind": "metric",
        "modality": "video",
        "adapter": "toy_scorer:ToyScorer",
        "options": {"fault": fault},
        "image": {"context": str(ADAPTERS), "base": "bookworm"},
        "resources": {"cpus": 1, "memory": "512m"},
        "timeouts": {"startup": "20s", "score": "10s"},
    }
    doc.update(overrides)
    return doc
