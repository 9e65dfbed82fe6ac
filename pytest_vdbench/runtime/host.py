"""What this host offers (CPUs, memory, GPUs, weights, credentials) and the one place skips are worded."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec

__all__ = ["GpuInfo", "HostInfo", "format_bytes", "hf_cache_dir", "probe_host", "unmet_requirements"]


def format_bytes(value: int | float | None) -> str:
    """``2147483648`` -> ``2.0 GiB``."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it."""

    index: int
    uuid: str
    name: str
    memory_total: int


@dataclass(frozen=True)
class HostInfo:
    """The host's capacity; ``gpu_note`` says why no GPU was seen."""

    cpus: int
    memory_total: int
    gpus: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    gpu_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _nvml_gpus() -> tuple[tuple[GpuInfo, ...], str | None, str]:
    try:
        import pynvml
    except ImportError:
        return (), None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return (), None, f"NVML unavailable ({exc}): no NVIDIA driver on this host"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo(i, str(pynvml.nvmlDeviceGetUUID(handle)), str(pynvml.nvmlDeviceGetName(handle)), int(mem.total)))
        return tuple(gpus), str(driver), "" if gpus else "NVML found no GPU"
    except Exception as exc:
        return (), None, f"NVML query failed: {exc}"
    finally:
        with contextlib.suppress(Exception):  # shutting down a half-initialised NVML
            pynvml.nvmlShutdown()


def probe_host() -> HostInfo:
    """Read CPUs, memory and GPUs (NVML when present; never fails on CPU-only hosts)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    gpus, driver, note = _nvml_gpus()
    return HostInfo(cpus=os.cpu_count() or 1, memory_total=memory, gpus=gpus, driver=driver, gpu_note=note)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache the ``full`` variants read (``VDBENCH_HF_CACHE`` wins)."""
    explicit = os.environ.get("VDBENCH_HF_CACHE") or os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME")
    return Path(home) / "hub" if home else Path.home() / ".cache" / "huggingface" / "hub"


def _weights_present(cache: Path, repo: str) -> bool:
    snapshots = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in snapshots.iterdir())


def unmet_requirements(spec: ModelSpec, host: HostInfo, *, runtime: str) -> str | None:
    """Why ``spec`` cannot run on ``host``, worded for a skip; None when it can."""
    m = spec.manifest
    missing: list[str] = []
    if (m.requires.gpu or m.resources.gpus) and runtime != "slurm":  # under Slurm the scheduler decides
        count = max(1, m.resources.gpus)
        fitting = [g for g in host.gpus if g.memory_total >= m.resources.gpu_memory]
        if len(fitting) < count:
            need = f"{count} GPU(s)" + (f" with {format_bytes(m.resources.gpu_memory)} each" if m.resources.gpu_memory else "")
            have = ", ".join(f"{g.name} {format_bytes(g.memory_total)}" for g in host.gpus) or f"none ({host.gpu_note})"
            missing.append(f"needs {need}; this host has {have}")
    if m.requires.weights:
        cache = hf_cache_dir()
        absent = [w.repo for w in m.requires.weights if not _weights_present(cache, w.repo)]
        if absent:
            missing.append(
                f"weights {', '.join(absent)} not found in the Hugging Face cache {cache} "
                "(download them there or point VDBENCH_HF_CACHE at a cache that has them)"
            )
    absent_env = [name for name in m.requires.env if not os.environ.get(name)]
    if absent_env:
        missing.append(f"environment variable(s) {', '.join(absent_env)} not set")
    if runtime == "docker":
        if host.memory_total and m.resources.memory > host.memory_total:
            missing.append(
                f"needs a {format_bytes(m.resources.memory)} memory limit; this host has {format_bytes(host.memory_total)}"
            )
        if m.resources.cpus > host.cpus:
            missing.append(f"needs {m.resources.cpus:g} CPUs; this host has {host.cpus}")
    return "; ".join(missing) or None
