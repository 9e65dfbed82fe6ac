"""The process's part in an xdist run, decided once: solo, controller or worker."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["LEAVE_OUT_KEY", "Role", "XdistRole"]

#: workerinput: the manifests whose every model the controller reuses or resumes (workers skip them)
LEAVE_OUT_KEY = "vdbench_leave_out"


class Role(enum.Enum):
    SOLO = "solo"  # no xdist: this process collects, runs and reports
    CONTROLLER = "controller"  # xdist's controller: runs no test, merges the workers' results, reports
    WORKER = "worker"  # an xdist worker: runs tests, ships its results to the controller


@dataclass(frozen=True)
class XdistRole:
    """``role`` plus the worker's id (``main`` outside workers) and what the controller sent it."""

    role: Role
    worker_id: str = "main"
    workerinput: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, config: pytest.Config) -> XdistRole:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:
            return cls(Role.WORKER, str(workerinput["workerid"]), dict(workerinput))
        if getattr(config.option, "dist", "no") != "no":
            return cls(Role.CONTROLLER)
        return cls(Role.SOLO)

    @property
    def is_worker(self) -> bool:
        return self.role is Role.WORKER

    @property
    def is_controller(self) -> bool:
        return self.role is Role.CONTROLLER

    @property
    def reports(self) -> bool:
        """Whether this process writes the run's reports and owns shared files (not a worker)."""
        return self.role is not Role.WORKER
