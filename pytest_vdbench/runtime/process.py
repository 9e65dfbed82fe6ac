"""The ``process`` runtime: the adapter server as a local subprocess on a free 127.0.0.1 port.

No isolation and no limits: it is the contributor's seconds-long loop and the fallback when no
Docker engine answers. Memory is read from /proc (VmHWM is the kernel's exact peak).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime import BuildInfo, Endpoint, ReadyProbe, ResourceUsage, RuntimeUnavailable, StartupError, wait_ready
from pytest_vdbench.runtime.resources import gpu_usage_for_pids

_MISSING_RE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
_PORT_RE = re.compile(r"serving \S+ on [\d.]+:(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class ProcessInstance:
    """A running adapter subprocess with a /proc memory sampler."""

    def __init__(self, spec: ModelSpec, log_dir: Path, ready_probe: ReadyProbe) -> None:
        self.spec = spec
        self.ready_probe = ready_probe
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{spec.id}-", suffix=".log", dir=log_dir)
        os.close(fd)
        self.log_path = Path(name)
        env = dict(os.environ)
        context = str(spec.context_dir)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (context, env.get("PYTHONPATH", "")) if p)
        env["VDBENCH_OPTIONS"] = json.dumps(spec.manifest.options)
        env.update(spec.manifest.env)
        for cache in spec.manifest.caches:  # a local process reads the host cache where it is
            if cache.env:
                env[cache.env] = str(cache.host_path())
        env["PYTHONUNBUFFERED"] = "1"
        self._t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_vdbench.adapter",
                    "serve",
                    str(spec.manifest.adapter),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                ],
                cwd=context,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.endpoint = Endpoint("127.0.0.1", 0)
        self.startup_seconds = 0.0
        self._samples: list[int] = []
        #: (time.time(), RSS bytes, CPU seconds so far, GPU memory bytes or None) every 50 ms
        self.timeline: list[tuple[float, int, float | None, int | None]] = []
        self._stopped = threading.Event()
        self._final: ResourceUsage | None = None
        self._sampler = threading.Thread(target=self._sample, name=f"vdbench-mem-{spec.id}", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        gpu = self.spec.manifest.requires.gpu
        tick = 0
        while not self._stopped.wait(0.05):
            rss = _proc_status(self.proc.pid).get("VmRSS")
            if rss:
                self._samples.append(rss)
                # NVML once a second, and only for models that use a GPU (it answers None elsewhere)
                gpu_memory = gpu_usage_for_pids({self.proc.pid})[0] if gpu and tick % 20 == 0 else None
                self.timeline.append((time.time(), rss, _cpu_seconds(self.proc.pid), gpu_memory))
                tick += 1

    def logs(self, tail: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def _exited(self) -> str | None:
        code = self.proc.poll()
        return None if code is None else f"exit code {code}"

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.endpoint.port == 0:
            match = _PORT_RE.search(self.logs(50))
            if match:
                self.endpoint = Endpoint("127.0.0.1", int(match.group(1)))
                break
            if self._exited():
                raise StartupError(f"{self.spec.id} exited before serving: {self._exited()}", self.logs())
            if time.monotonic() > deadline:
                raise StartupError(f"{self.spec.id} did not start serving within {timeout:g}s", self.logs())
            time.sleep(0.01)
        wait_ready(
            self.ready_probe(self.spec.manifest, self.endpoint),
            timeout=max(0.0, deadline - time.monotonic()),
            alive=self._exited,
            logs=self.logs,
            what=f"model {self.spec.id}",
            budget=timeout,
        )
        self.startup_seconds = time.monotonic() - self._t0

    def usage(self) -> ResourceUsage:
        if self._final is not None:
            return self._final
        status = _proc_status(self.proc.pid)
        cpu = _cpu_seconds(self.proc.pid)
        wall = time.monotonic() - self._t0
        samples = list(self._samples)
        code = self.proc.poll()
        return ResourceUsage(
            peak_memory_bytes=status.get("VmHWM") or (max(samples) if samples else None),
            mean_memory_bytes=int(sum(samples) / len(samples)) if samples else None,
            cpu_percent=100.0 * cpu / wall if cpu is not None and wall > 0 else None,
            memory_limit_bytes=None,
            exit_code=code,
            running=code is None,
            samples=len(samples),
            source="process (/proc; no limits applied)",
            log_bytes=self.log_path.stat().st_size if self.log_path.exists() else None,
        )

    def stop(self) -> ResourceUsage:
        if self._final is not None:
            return self._final
        usage = self.usage()
        self._stopped.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()  # SIGKILL cannot be refused; reaping it leaves no unclosed Popen behind
        usage.running = False
        self._final = usage
        return usage


class ProcessRuntime:
    """Run adapters as local subprocesses of this interpreter."""

    name = "process"

    def __init__(self, log_dir: Path, ready_probe: ReadyProbe) -> None:
        self.log_dir = log_dir
        self.ready_probe = ready_probe
        self._running: list[ProcessInstance] = []

    def prepare(self, spec: ModelSpec) -> BuildInfo:
        return BuildInfo(extra={"note": "process runtime: no image, dependencies come from this environment"})

    def start(self, spec: ModelSpec) -> ProcessInstance:
        protocol = spec.manifest.protocol
        if protocol != "native" or spec.manifest.adapter is None:
            raise RuntimeUnavailable(
                f"protocol {protocol}: the process runtime runs vdbench adapters only; the {protocol} server "
                "is started from the model's image (--vdbench-runtime docker)"
            )
        instance = ProcessInstance(spec, self.log_dir, self.ready_probe)
        self._running.append(instance)
        try:
            instance.wait_until_ready(spec.manifest.timeouts.startup)
        except StartupError as exc:
            instance.stop()
            missing = _MISSING_RE.search(exc.reason)
            adapter_module = spec.manifest.adapter.split(":")[0].removesuffix(".py").replace("/", ".")
            if missing and missing.group(1).split(".")[0] != adapter_module.split(".")[0]:
                # a library the model's image installs, not this environment: not the model's fault
                raise RuntimeUnavailable(
                    f"the process runtime uses this Python environment, which lacks {missing.group(1)!r} "
                    f"(needed by {spec.manifest.adapter}); run it with --vdbench-runtime docker, or install "
                    f"the requirements of {spec.context_dir.name}/ here"
                ) from None
            raise
        except BaseException:
            instance.stop()
            raise
        return instance

    def close(self) -> None:
        for instance in self._running:
            instance.stop()
        self._running.clear()
