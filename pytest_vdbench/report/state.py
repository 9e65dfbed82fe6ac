"""What the report gathers during a run, kept apart from the hooks that gather it (no report imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from pytest_vdbench.report.compare import ModelComparison
    from pytest_vdbench.session import VdbenchSession

__all__ = ["SCHEMA_VERSION", "STATE_KEY", "MachineInfo", "ReportState", "state_of"]


class MachineInfo(Protocol):
    """pytest-benchmark's machine info, probed in the background (``report.provenance.MachineProbe``)."""

    def result(self, interrupted: bool = False) -> dict[str, Any]: ...


#: 3: timings with statistics and verdicts (adaptive rounds: every round, the median interval, server time), failures,
#: log tails, provenance, environment, comparison (with the interval of each change), throughput, resource timelines
SCHEMA_VERSION = 3


@dataclass
class ReportState:
    """Failures, outcomes and log tails per model; the workers' rows and timings; the comparison."""

    failures: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    log_tails: dict[str, str] = field(default_factory=dict)
    worker_rows: list[dict[str, Any]] = field(default_factory=list)  # rows shipped by xdist workers (controller)
    timing_records: list[dict[str, Any]] = field(default_factory=list)  # pytest-benchmark records of every process
    baseline: dict[str, Any] | None = None
    comparison: dict[str, ModelComparison] | None = None
    rows: list[dict[str, Any]] | None = None  # the controller's final rows, once computed
    #: manifest (as shown) -> its failed ``::manifest`` test: ``manifest``, ``test``, ``status``, ``problems``
    invalid_manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine: MachineInfo | None = None  # pytest-benchmark's machine info, probed in the background from the start
    #: why the run stopped early (Ctrl-C: "KeyboardInterrupt", SIGTERM: "KeyboardInterrupt: signal 15"), else None
    interrupted: str | None = None
    tests: dict[str, int] = field(default_factory=dict)  # model id -> its selected tests
    finished: dict[str, int] = field(default_factory=dict)  # model id -> its tests that ran to the end (teardown)

    def unfinished(self, model: str) -> bool:
        """An interrupted run left some of this model's selected tests unrun or unfinished."""
        return self.interrupted is not None and self.finished.get(model, 0) < self.tests.get(model, 0)


STATE_KEY = pytest.StashKey[ReportState]()


def state_of(session: VdbenchSession) -> ReportState | None:
    return session.config.stash.get(STATE_KEY, None)
