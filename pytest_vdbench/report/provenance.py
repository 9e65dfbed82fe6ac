"""Provenance for the report: what ran, where, with what, so a run can be reproduced from it."""

from __future__ import annotations

import contextlib
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import pytest_vdbench

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.session import VdbenchSession

__all__ = ["cpu_model", "environment", "run_provenance"]


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
    from pytest_benchmark.utils import get_machine_id

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
        "machine_id": get_machine_id(),  # type: ignore[no-untyped-call]  # pytest-benchmark's id of this machine
        "worker": session.role.worker_id,
        "plugin_version": pytest_vdbench.__version__,
        "python": platform.python_version(),
    }


def _program() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "pytest"
    return "python -m pytest" if name == "__main__.py" else name


def environment(session: VdbenchSession) -> dict[str, Any]:
    """The run as a whole: host, pytest-benchmark's machine info, versions and the command line."""
    from pytest_benchmark.utils import get_machine_id

    config = session.config
    try:  # pytest-benchmark's own hook, so a conftest override is honoured here too
        machine_info = config.hook.pytest_benchmark_generate_machine_info(config=config)
    except Exception as exc:  # never lose the report over a probe
        machine_info = {"error": f"{exc.__class__.__name__}: {exc}"}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(session.options).items()}
    options = {k: ([str(x) for x in v] if isinstance(v, tuple) else v) for k, v in options.items()}
    return {
        "plugin_version": pytest_vdbench.__version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "pytest": pytest.__version__,
        "host": _host_summary(session),
        "machine_id": get_machine_id(),  # type: ignore[no-untyped-call]
        "machine_info": machine_info,
        "command_line": [_program(), *config.invocation_params.args],
        "invocation_dir": str(config.invocation_params.dir),
        "options": options,
        "testrun": session.testrun,
    }
