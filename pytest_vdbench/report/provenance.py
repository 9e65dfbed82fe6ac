"""Provenance for the report: what ran, where, with what, so a run can be reproduced from it."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import pytest_vdbench

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.session import VdbenchSession

__all__ = ["MachineProbe", "cpu_model", "environment", "machine_id", "run_provenance"]

#: how long the report waits for a probe still running (after an interrupt, otherwise), then says it is missing
INTERRUPTED_PROBE_WAIT = 0.5
PROBE_WAIT = 60.0


class MachineProbe:
    """pytest-benchmark's machine info, probed once in a background thread.

    The probe (py-cpuinfo starts a Python subprocess) took 1.4 s on an idle 2-core host and 1.9 s
    on a busy one; asked for while the report was written, that time came on top of a Ctrl-C.
    Started when the session starts, it is done long before the report needs it. The thread (and
    the subprocess it starts) runs at nice 10, so it does not compete with the models being timed.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.machine_info: dict[str, Any] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> MachineProbe:
        self._thread = threading.Thread(target=self._probe, args=(True,), name="vdbench-machine-info", daemon=True)
        self._thread.start()
        return self

    def _probe(self, background: bool = False) -> None:
        if background:
            with contextlib.suppress(OSError, AttributeError):  # Linux: niceness is per thread, inherited by children
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:  # pytest-benchmark's own hook, so a conftest override is honoured here too
            self.machine_info = self.config.hook.pytest_benchmark_generate_machine_info(config=self.config)
        except Exception as exc:  # never lose the report over a probe
            self.machine_info = {"error": f"{exc.__class__.__name__}: {exc}"}
        self._done.set()

    def result(self, interrupted: bool = False) -> dict[str, Any]:
        """The machine info: probed here when never started, else waited for (briefly after an interrupt)."""
        if self._thread is None:
            self._probe()
        wait = INTERRUPTED_PROBE_WAIT if interrupted else PROBE_WAIT
        if not self._done.wait(wait):
            when = "the run was interrupted while" if interrupted else "at the end of the run"
            return {"error": f"not probed: {when} pytest-benchmark's machine-info probe still ran (waited {wait:g} s)"}
        return self.machine_info


@functools.cache
def machine_id() -> str:
    """pytest-benchmark's id of this machine, once per process (``platform.architecture`` runs ``file``)."""
    from pytest_benchmark.utils import get_machine_id

    return str(get_machine_id())  # type: ignore[no-untyped-call]


def _machine_info(session: VdbenchSession) -> dict[str, Any]:
    """The run's probe (started with the session), waited for at most briefly after an interrupt."""
    from pytest_vdbench.report.state import state_of

    state = state_of(session)
    if state is None:
        return MachineProbe(session.config).result()
    if state.machine is None:
        state.machine = MachineProbe(session.config)
    return state.machine.result(interrupted=state.interrupted is not None)


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def _host_summary(session: VdbenchSession) -> dict[str, Any]:
    host = session.host
    return {
        "node": platform.node(),
        "cpu_model": cpu_model(),
        "cpus": host.cpus,
        "memory_bytes": host.memory_total,
        "gpus": [{"index": g.index, "uuid": g.uuid, "name": g.name, "memory_bytes": g.memory_total} for g in host.gpus],
        "driver": host.driver,
        "gpu_note": host.gpu_note,
    }


def run_provenance(session: VdbenchSession, run: ModelRun) -> dict[str, Any]:
    """Facts of one model run: image, manifest, cases and seeds, libraries inside the container."""
    spec, build, meta = run.spec, run.build, run.metadata or {}
    extra = dict(build.extra) if build is not None else {}
    return {
        "image": build.image if build else None,
        "image_id": build.image_id if build else None,  # the local image's content digest (sha256:…)
        "image_digest": extra.get("digest") or (build.image_id if build else None),
        "image_build": {k: v for k, v in extra.items() if isinstance(v, str | int | float | bool) or v is None},
        "manifest": str(spec.path),
        "manifest_sha256": spec.manifest_sha256,
        "model": spec.name,
        "variant": spec.variant,
        "adapter": spec.manifest.adapter,
        "runtime": run.runtime.name,
        "cases": [{"id": c.id, "prompt": c.prompt, "seed": c.seed, "params": c.params} for c in spec.manifest.cases],
        "rounds": spec.manifest.rounds,
        "warmup_rounds": spec.manifest.warmup_rounds,
        "libraries": meta.get("libraries") or {},
        "adapter_python": meta.get("python"),
        "adapter_platform": meta.get("platform"),
        "adapter_sdk": meta.get("sdk_version") or meta.get("sdk"),
        "host": _host_summary(session),
        "machine_id": machine_id(),  # pytest-benchmark's id of this machine
        "worker": session.role.worker_id,
        "plugin_version": pytest_vdbench.__version__,
        "python": platform.python_version(),
    }


def _program() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "pytest"
    return "python -m pytest" if name == "__main__.py" else name


def environment(session: VdbenchSession) -> dict[str, Any]:
    """The run as a whole: host, pytest-benchmark's machine info, versions and the command line."""
    config = session.config
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(session.options).items()}
    options = {k: ([str(x) for x in v] if isinstance(v, tuple) else v) for k, v in options.items()}
    return {
        "plugin_version": pytest_vdbench.__version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "pytest": pytest.__version__,
        "host": _host_summary(session),
        "machine_id": machine_id(),
        "machine_info": _machine_info(session),
        "command_line": [_program(), *config.invocation_params.args],
        "invocation_dir": str(config.invocation_params.dir),
        "options": options,
        "testrun": session.testrun,
    }
