"""Host probing, NVML and cgroup readers, tested without a GPU (fake pynvml, fake cgroup trees)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from pytest_vdbench.runtime.host import probe_host
from pytest_vdbench.runtime.resources import find_cgroup, gpu_usage_for_pids


class NVMLError(Exception):
    pass


def fake_nvml(gpus: list[tuple[str, int]], procs: dict[int, list[tuple[int, int]]], init_fails: bool = False) -> types.ModuleType:
    """A pynvml stand-in: ``gpus`` as (name, total bytes); ``procs[gpu]`` as (host pid, bytes)."""
    mod = types.ModuleType("pynvml")
    state = {"init": 0}

    def init() -> None:
        if init_fails:
            raise NVMLError("NVML Shared Library Not Found")
        state["init"] += 1

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    mod.nvmlSystemGetDriverVersion = lambda: "550.54"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: gpus[h][0]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-{h:04d}"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=gpus[h][1])  # type: ignore[attr-defined]
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: [  # type: ignore[attr-defined]
        types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in procs.get(h, [])
    ]
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=40 + 10 * h)  # type: ignore[attr-defined]
    return mod


def test_probe_host_with_two_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("H100", 80 * 2**30), ("L4", 24 * 2**30)], {}))
    host = probe_host()
    assert [(g.name, g.uuid, g.memory_total) for g in host.gpus] == [
        ("H100", "GPU-0000", 80 * 2**30),
        ("L4", "GPU-0001", 24 * 2**30),
    ]
    assert host.driver == "550.54" and host.cpus >= 1 and host.memory_total > 0


def test_probe_host_without_driver_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], {}, init_fails=True))
    host = probe_host()
    assert host.gpus == () and "NVML unavailable" in host.gpu_note and "no NVIDIA driver" in host.gpu_note


def test_probe_host_without_nvml_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert probe_host().gpu_note == "nvidia-ml-py is not installed"


def test_gpu_usage_maps_host_pids(monkeypatch: pytest.MonkeyPatch) -> None:
    procs = {0: [(100, 2 * 2**30), (200, 5 * 2**30)], 1: [(300, 2**30)]}
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("A", 2**35), ("B", 2**35)], procs))
    assert gpu_usage_for_pids({100}) == (2 * 2**30, 40.0)
    assert gpu_usage_for_pids({100, 300}) == (3 * 2**30, 45.0)
    assert gpu_usage_for_pids({999}) == (0, None)


def test_gpu_usage_survives_nvml_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = fake_nvml([("A", 2**35)], {})

    def boom(handle: Any) -> Any:
        raise NVMLError("GPU is lost")

    mod.nvmlDeviceGetComputeRunningProcesses = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    assert gpu_usage_for_pids({1}) == (None, None)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], {}, init_fails=True))
    assert gpu_usage_for_pids({1}) == (None, None)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_reader(tmp_path: Path) -> None:
    write(tmp_path / "memory/docker/abc/memory.usage_in_bytes", "1000\n")
    write(tmp_path / "memory/docker/abc/memory.max_usage_in_bytes", "5000\n")
    write(tmp_path / "cpuacct/docker/abc/cpuacct.usage", "2500000000\n")
    reader = find_cgroup("abc", tmp_path)
    assert reader is not None and reader.version == 1
    reading = reader.read()
    assert reading is not None and (reading.memory, reading.peak, reading.cpu_seconds) == (1000, 5000, 2.5)
    (tmp_path / "memory/docker/abc/memory.usage_in_bytes").unlink()
    assert reader.read() is None  # container removed


def test_cgroup_v2_systemd_reader(tmp_path: Path) -> None:
    scope = tmp_path / "system.slice/docker-abc.scope"
    write(scope / "memory.current", "2048\n")
    write(scope / "memory.peak", "4096\n")
    write(scope / "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n")
    reader = find_cgroup("abc", tmp_path)
    assert reader is not None and reader.version == 2
    reading = reader.read()
    assert reading is not None and (reading.memory, reading.peak, reading.cpu_seconds) == (2048, 4096, 1.5)


def test_no_cgroup_visible(tmp_path: Path) -> None:
    assert find_cgroup("abc", tmp_path) is None
