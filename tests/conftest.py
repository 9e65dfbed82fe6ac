"""Fixtures for the plugin's tests: suites of toy-model manifests and inner pytest runs over them.

Plain helpers (``toy_manifest``, ``docker_or_skip``, ``containers``) live in ``helpers.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.dialects.postgresql  # imported before any pytester snapshot, see below
import sqlalchemy.dialects.sqlite  # noqa: F401
import yaml

from helpers import RunVdbench

# Why the two dialect imports above: a test that takes the ``pytester`` fixture gets sys.modules
# restored afterwards, so a dialect its own body imported first (``open_store(postgres_url)``) is
# dropped from sys.modules while SQLAlchemy's function registry keeps its ``_regconfig_fn``; the
# next import of the dialect then warns "already registered" (an error here) and every later
# PostgreSQL test of that process fails. Found by a random-order run (seed 4711); imported here,
# the dialects (and the driver, whose exception classes SQLAlchemy matches by identity) are part of
# every snapshot.
with contextlib.suppress(ImportError):
    import psycopg  # noqa: F401


@pytest.fixture(autouse=True)
def own_temporary_folder(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test gets its own temporary folder (``TMPDIR`` for subprocesses, ``tempfile`` in this
    process), short because sockets live there; afterwards it is checked, then removed.

    What the vdbench runs of a test may leave there: a failed run's kept logs (marked ``kept.json``)
    and a SIGKILLed run's leftovers (its owner is dead: the next run's sweep takes them). What fails
    the test: a work folder whose owner is alive (a run that ended without its cleanup), a socket
    folder, a ledger file of a run that ended (its controller removes it) or a reservation still held.
    """
    tmp_path_factory.getbasetemp()  # fixed first: without xdist pytest picks it lazily, from TMPDIR
    folder = Path(tempfile.mkdtemp(prefix="vdt-", dir=tempfile.gettempdir()))
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    leaks = _leftovers(folder)
    shutil.rmtree(folder, ignore_errors=True)
    if leaks:
        pytest.fail("vdbench left behind in the test's temporary folder: " + "; ".join(leaks), pytrace=False)


def _leftovers(folder: Path) -> list[str]:
    from pytest_vdbench.runtime.owners import OWNER_FILE, entry_gone, owner_gone, read_record

    leaks = []
    for path in sorted(folder.glob("vdbench-*")):
        if path.name.startswith("vdbench-sock-"):
            leaks.append(f"{path.name} (a container's socket folder)")
        elif path.name.startswith("vdbench-ledger-") and path.suffix == ".json":
            entries = read_record(path) or {}
            held = [e for e in entries.values() if not entry_gone(e)]
            if held or not entries:  # entries of dead processes only: a SIGKILLed run's, for the next sweep
                leaks.append(f"{path.name} ({len(held)} reservation(s) held)" if held else f"{path.name} (empty ledger)")
        elif path.is_dir() and (record := read_record(path / OWNER_FILE)) is not None and not owner_gone(record):
            leaks.append(f"{path.name} (work folder of a run that ended alive: {sorted(p.name for p in path.iterdir())})")
    return leaks


#: the flags every inner vdbench run of these tests shares: no timing noise, no cache unless asked
QUIET = ("--benchmark-disable", "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning")


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


@pytest.fixture
def run_vdbench(pytester: pytest.Pytester) -> RunVdbench:
    """An inner ``pytest --vdbench`` in a subprocess (``--vdbench-suite SUITE``, the process runtime by default)."""

    def run(*args: str | Path, suite: Path | None = None, runtime: str | None = "process") -> pytest.RunResult:
        flags: list[str | Path] = ["--vdbench", *QUIET]
        if suite is not None:
            flags += ["--vdbench-suite", suite]
        if runtime is not None:
            flags += ["--vdbench-runtime", runtime]
        return pytester.runpytest_subprocess(*flags, *args)

    return run


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
