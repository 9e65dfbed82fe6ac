"""pytest entry point: options, the session object, and the public fixtures."""

from __future__ import annotations

import pytest

from pytest_vdbench.fixtures import (  # noqa: F401 - fixtures are registered by import
    vdbench_case,
    vdbench_client,
    vdbench_endpoint,
    vdbench_model,
    vdbench_run,
    vdbench_session,
)
from pytest_vdbench.options import VdbenchOptions, addoption
from pytest_vdbench.session import SESSION_KEY, VdbenchSession


def pytest_addoption(parser: pytest.Parser) -> None:
    addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vdbench: a generated vdbench conformance test")
    config.addinivalue_line("markers", "vdbench_models(*patterns): run this test against these models only")
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")
    options = VdbenchOptions.from_config(config)
    if not options.enabled:
        return
    session = VdbenchSession(config, options)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "vdbench-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]
