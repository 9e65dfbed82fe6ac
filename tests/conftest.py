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


def postgres_admin_url() -> str:
    """The cluster of scripts/start-postgres.sh (VDBENCH_PG_URL or the URL file it writes); skip, or fail in CI."""
    url = os.environ.get("VDBENCH_PG_URL", "")
    url_file = Path(os.environ.get("VDBENCH_PG_DIR", "/tmp/vdbench-pg")) / "url"
    if not url and url_file.is_file():
        url = url_file.read_text().strip()
    reason = "" if url else "no PostgreSQL cluster: run scripts/start-postgres.sh (or set VDBENCH_PG_URL)"
    if url:
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=5).close()
        except Exception as exc:
            reason = f"PostgreSQL at {url} does not answer ({exc}); run scripts/start-postgres.sh"
    if reason:
        if os.environ.get("VDBENCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"VDBENCH_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh, empty results store: a SQLite file, and a new database on the test PostgreSQL cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
        return
    import uuid

    import psycopg

    admin = postgres_admin_url()
    name = f"vdbench_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
