"""Public fixtures: use them in your own tests to talk to a running model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_vdbench.manifest import Case, ModelSpec
from pytest_vdbench.protocols import ModelClient
from pytest_vdbench.run import ModelNotReady, ModelRun
from pytest_vdbench.runtime import Endpoint
from pytest_vdbench.session import SESSION_KEY, VdbenchSession

__all__ = ["vdbench_case", "vdbench_client", "vdbench_endpoint", "vdbench_model", "vdbench_run", "vdbench_session"]


@pytest.fixture(scope="session")
def vdbench_session(pytestconfig: pytest.Config) -> VdbenchSession:
    """The vdbench run: selected models, the runtime, every model's results. Needs --vdbench."""
    session = pytestconfig.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("vdbench is off: run pytest with --vdbench")
    return session


@pytest.fixture(scope="module")
def vdbench_model(request: pytest.FixtureRequest, vdbench_session: VdbenchSession) -> ModelSpec:
    """The model (variant) under test: its validated manifest. Parametrized over selected models.

    In your own test modules, narrow it with ``@pytest.mark.vdbench_models("name-or-glob", ...)``.
    Skips with the reason when this host cannot run the model (GPU, weights, credentials).
    """
    spec: ModelSpec = request.param if hasattr(request, "param") else request.node.spec
    reason = vdbench_session.skip_reason(spec)
    if reason:
        vdbench_session.skipped[spec.id] = reason
        pytest.skip(f"{spec.id}: {reason}")
    return spec


@pytest.fixture(scope="module")
def vdbench_run(vdbench_model: ModelSpec, vdbench_session: VdbenchSession) -> Iterator[ModelRun]:
    """The model's run: its image, its instance (started on first use) and outputs so far.

    The instance is stopped and removed when the last test of the model in this module ends.
    """
    run = vdbench_session.run_for(vdbench_model)
    try:
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="module")
def vdbench_endpoint(vdbench_run: ModelRun) -> Endpoint:
    """Host and port (always 127.0.0.1) of the ready adapter server."""
    try:
        return vdbench_run.ensure_started().endpoint
    except ModelNotReady as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def vdbench_client(vdbench_run: ModelRun, vdbench_endpoint: Endpoint) -> ModelClient:
    """A client for the ready model in its manifest's protocol (generate, metadata, requirements, fit)."""
    return vdbench_run.client


@pytest.fixture
def vdbench_case(request: pytest.FixtureRequest) -> Case:
    """The manifest case of a generated test (prompt, seed, params, dataset)."""
    case: Case = request.param
    return case
