"""pytest entry point: options, the session object, and the public fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_vdbench.checks.metrics import builtin_registry
from pytest_vdbench.checks.quality import METRICS_KEY
from pytest_vdbench.cmdline import resettle_setup
from pytest_vdbench.fixtures import (  # noqa: F401 - fixtures are registered by import
    vdbench_case,
    vdbench_client,
    vdbench_endpoint,
    vdbench_model,
    vdbench_run,
    vdbench_session,
)
from pytest_vdbench.options import VdbenchOptions, addoption
from pytest_vdbench.protocols import builtin_protocols
from pytest_vdbench.report import ReportRecorder
from pytest_vdbench.report.row import build_row
from pytest_vdbench.report.state import SCHEMA_VERSION, state_of
from pytest_vdbench.role import XdistRole
from pytest_vdbench.runtime import builtin_runtimes
from pytest_vdbench.session import PROTOCOLS_KEY, RUNTIMES_KEY, SESSION_KEY, VdbenchSession
from pytest_vdbench.store.recorder import STORE_KEY, ReportLink, StoreRecorder


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_vdbench import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    addoption(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # `--vdbench-report DIR` must not pass DIR off as a path to collect (see cmdline.py)
    resettle_setup(early_config, parser, args)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vdbench: a generated vdbench conformance test")
    config.addinivalue_line("markers", "vdbench_models(*patterns): run this test against these models only")
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")
    if not config.getoption("vdbench", False):
        return
    _extensions(config)  # first: an unknown --vdbench-runtime is the error to report
    options = VdbenchOptions.from_config(config)
    if getattr(config.option, "dist", "no") == "load":
        # `-n N` alone means --dist load; a model's tests must share one worker (one container)
        config.option.dist = "loadgroup"
    if XdistRole.of(config).workerinput.get("vdbench_loadgroup"):
        config.option.loadgroup = True  # workers re-parse the command line: tell them, too
    session = VdbenchSession(config, options)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "vdbench-session")
    if options.store is not None:  # before the report: a resumed run takes its id, a store baseline needs the store
        config.stash[STORE_KEY] = store = StoreRecorder(session, _report_link(session))
        config.pluginmanager.register(store, "vdbench-store")
        if session.role.is_controller:
            store.fewer_workers(config)
    config.pluginmanager.register(ReportRecorder(session), "vdbench-report")


def _report_link(session: VdbenchSession) -> ReportLink:
    """The report's row builder and row list, for the store (which imports no report module)."""

    def shared_rows() -> list[dict[str, Any]] | None:
        state = state_of(session)
        return None if state is None else state.worker_rows

    return ReportLink(
        row=lambda run: build_row(session, run.spec.id, run, state_of(session)),
        shared_rows=shared_rows,
        schema_version=SCHEMA_VERSION,
    )


def _extensions(config: pytest.Config) -> None:
    """The run's metrics, runtimes and protocols: the built-ins, then every plugin's hook."""
    metrics = builtin_registry()
    config.hook.pytest_vdbench_add_metrics(registry=metrics, config=config)
    config.stash[METRICS_KEY] = metrics
    runtimes = builtin_runtimes()
    config.hook.pytest_vdbench_add_runtimes(registry=runtimes, config=config)
    config.stash[RUNTIMES_KEY] = runtimes
    wanted = config.getoption("vdbench_runtime") or str(config.getini("vdbench_runtime") or "") or None
    if wanted is not None and wanted not in runtimes.names():
        valid = ", ".join(runtimes.names())
        raise pytest.UsageError(f"--vdbench-runtime {wanted}: unknown runtime {wanted!r}; valid runtimes: {valid}")
    protocols = builtin_protocols()
    config.hook.pytest_vdbench_add_protocols(registry=protocols, config=config)
    config.stash[PROTOCOLS_KEY] = protocols


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: pass the loadgroup switch made in pytest_configure on to each worker."""
    session = node.config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    node.workerinput["vdbench_testrun"] = session.testrun
    node.workerinput["vdbench_logs"] = str(session.log_root)  # one folder holds every worker's logs
    store = node.config.stash.get(STORE_KEY, None)
    if store is not None:
        node.workerinput.update(store.workerinput())
    if node.config.option.dist == "loadgroup":
        node.workerinput["vdbench_loadgroup"] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]
