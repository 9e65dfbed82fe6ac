"""The ``docker`` runtime: content-addressed images, testcontainers under the manifest's limits.

Each container renders the model's ``runtime/plan.py`` plan (limits, hardening, mounts, labels,
readiness) as docker-py arguments (``docker_run_kwargs``). Ports are published on 127.0.0.1 only
and the harness talks to 127.0.0.1 only. Containers are labelled with the run id and are always
removed: on stop (the model's reservation goes back once its processes are gone; the engine's
removal goes on in the background and ``close()`` waits for it), and by a sweep at session end.

The ``network: none`` sandbox (manifest ``sandbox.network`` or ``--vdbench-sandbox``) gives the
container no network at all: no ports are published and the adapter serves HTTP on a Unix socket
in a host directory bind-mounted at ``/run/vdbench``, removed with the container.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime import (
    BuildInfo,
    Endpoint,
    ReadyProbe,
    ResourceUsage,
    RuntimeUnavailable,
    ServerFacts,
    ServerLookup,
    StartupError,
    wait_ready,
)
from pytest_vdbench.runtime.host import hf_cache_dir, probe_host
from pytest_vdbench.runtime.ledger import DoesNotFit, Inventory, Ledger, Need, Reservation, ReservationTimeout
from pytest_vdbench.runtime.plan import DEFAULT_HARDENING, LABEL_MODEL, LABEL_RUN, LABEL_TESTRUN, ContainerPlan, container_plan
from pytest_vdbench.runtime.resources import CgroupReader, find_cgroup, gpu_usage_for_pids

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled offline
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")  # never the docker0 gateway

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.waiting_utils import WaitStrategy

__all__ = [
    "LABEL_MODEL",
    "LABEL_RUN",
    "LABEL_TESTRUN",
    "DockerInstance",
    "DockerRuntime",
    "docker_run_kwargs",
    "docker_unavailable",
    "sweep",
]

LABEL_HOST = "org.vdbench.host"
LABEL_PID = "org.vdbench.pid"


def owner_labels() -> dict[str, str]:
    """This process as container labels (host + pid of the run that owns the container)."""
    import socket

    return {LABEL_HOST: socket.gethostname(), LABEL_PID: str(os.getpid())}


def docker_run_kwargs(
    plan: ContainerPlan,
    *,
    host_env: Mapping[str, str] | None = None,
    socket_dir: str | None = None,
    hf_cache: str | None = None,
    gpu_uuids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The plan as docker-py ``containers.create()`` arguments (pure: no engine is asked).

    ``host_env``: where ``requires.env`` values come from; ``socket_dir``: the host directory mounted
    for a sandboxed adapter's socket; ``gpu_uuids``: the GPUs the ledger granted (else a count).
    """
    host_env = os.environ if host_env is None else host_env
    env = {**plan.env_dict, **{n: host_env[n] for n in plan.env_from_host if n in host_env}}
    lim, hard = plan.limits, plan.hardening
    kwargs: dict[str, Any] = {
        "command": list(plan.command) if plan.command is not None else None,
        "environment": env,
        "labels": plan.labels_dict,
        "mem_limit": lim.memory,
        "memswap_limit": lim.memswap,
        "nano_cpus": int(lim.cpus * 1e9),
        "shm_size": lim.shm,
        "pids_limit": lim.pids,
        "user": hard.user_spec,
        "cap_drop": list(hard.cap_drop),
        "security_opt": list(hard.security_opt),
        "read_only": hard.read_only_root,
        "tmpfs": dict(hard.tmpfs),
        "volumes": {},
    }
    for mount in plan.mounts:
        source = mount.source or (socket_dir if mount.name == "sockets" else hf_cache)
        if source is None:
            raise ValueError(f"{plan.model}: no host directory for the {mount.name} mount at {mount.target}")
        kwargs["volumes"][source] = {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
    if plan.network == "none":
        kwargs["network_mode"] = "none"
        kwargs["ports"] = {}
    else:  # docker-py takes (host_ip, host_port): publish on loopback only, on a free port
        kwargs["ports"] = {f"{plan.port}/tcp": ("127.0.0.1", None)}
    if lim.gpus:
        import docker.types

        # the GPUs the ledger granted, by UUID (so models packed onto one GPU really share it)
        request = (
            docker.types.DeviceRequest(device_ids=list(gpu_uuids), capabilities=[["gpu"]])
            if gpu_uuids
            else docker.types.DeviceRequest(count=lim.gpus, capabilities=[["gpu"]])
        )
        kwargs["device_requests"] = [request]
    return kwargs


# -- container options against hostile neighbours (#17) -----------------------------------------
# Kept together so the container plan (runtime/plan.py) can take them over as they are.
CONTAINER_UID = DEFAULT_HARDENING.user  # the user every model runs as; it must own the sandbox's socket
LOG_MAX_SIZE, LOG_MAX_FILES = "10m", 3  # the engine keeps at most 30 MiB of a container's logs
NOFILE = 4096  # open files per container (the adapter server caps connections at 512)
SOCKET_DIR_BYTES = 256 * 1024  # the sandbox's socket folder: a tmpfs this small (when the host can mount)
REMOVE_WAIT = 60.0  # seconds stop() waits for a container's processes to go, close() for its removal


def neighbour_limits() -> dict[str, Any]:
    """docker-py run() options that keep one model from filling the engine's disk or file table."""
    import docker.types

    return {
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": str(LOG_MAX_FILES)}),
        "ulimits": [docker.types.Ulimit(name="nofile", soft=NOFILE, hard=NOFILE)],
    }


def make_socket_dir() -> Path:
    """A fresh host folder for the sandbox's socket: a tiny tmpfs when this process may mount one.

    The container's user may create the socket there and, once the model is ready,
    :func:`lock_socket_dir` takes even that away: the adapter can neither fill the host's disk
    through it nor swap its socket for a symlink to another host socket.
    """
    path = Path(tempfile.mkdtemp(prefix="vdbench-sock-"))  # short: a socket path is limited to 107 bytes
    if os.geteuid() == 0 and shutil.which("mount"):
        options = f"size={SOCKET_DIR_BYTES},nr_inodes=16,mode=0733,nosuid,nodev,noexec"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "vdbench-sock", str(path)], capture_output=True, check=False)
    path.chmod(0o733)  # the container's user creates the socket; nobody else lists it
    return path


def lock_socket_dir(path: Path) -> None:
    """After readiness: only the verified socket stays, and the folder is no longer writable by the model."""
    sock = path / "adapter.sock"
    info = sock.lstat()
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != CONTAINER_UID:
        raise StartupError(
            f"{sock} is not a socket owned by uid {CONTAINER_UID} (mode {stat.filemode(info.st_mode)}, uid {info.st_uid}): "
            "the sandboxed adapter tampered with its socket folder",
            "",
        )
    for entry in path.iterdir():
        if entry.name != "adapter.sock":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    path.chmod(0o711)


def remove_socket_dir(path: Path) -> None:
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def docker_unavailable() -> str | None:
    """None when a Docker engine answers; otherwise why not, worded for a skip or notice."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        from pytest_vdbench.runtime.images import collect_leaked_sockets

        collect_leaked_sockets()
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return f"no Docker engine answers at {host} ({type(exc).__name__}); start one (scripts/start-docker.sh)"
    return None


class AdapterReadyWait(WaitStrategy):
    """Wait for the protocol's readiness answer; fail fast when setup failed or the container died."""

    def __init__(self, instance: DockerInstance, timeout: float) -> None:
        super().__init__()
        self.instance = instance
        self.with_startup_timeout(timedelta(seconds=timeout))

    def wait_until_ready(self, container: Any) -> None:
        inst = self.instance
        if inst.socket_dir is None:
            inst.endpoint = Endpoint("127.0.0.1", int(container.get_exposed_port(inst.port)))
        wait_ready(
            inst.ready_probe(inst.spec.manifest, inst.endpoint),
            timeout=self._startup_timeout,
            alive=inst.exited,
            logs=inst.logs,
            what=f"container of {inst.spec.id}",
        )
        if inst.socket_dir is not None:
            lock_socket_dir(inst.socket_dir)


_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z ", re.MULTILINE)


class LogCounter:
    """Bytes of a container's output, counted as the engine's log stream delivers them.

    The stream lags behind the container on a busy host (the engine decodes every line; the
    reading thread waits for the GIL): a count read at once can miss most of what a chatty model
    printed a moment ago, and a 2 MiB-per-call model then passed a 1 MiB budget (seen under load).
    The stream is read with the engine's timestamps (``docker logs -t``; not counted as output), so
    the counter knows how far it has got. ``settled()`` asks the engine for what came after that
    (``fetch(since)``, one non-streamed read of the lagging tail) and adds it, without waiting.
    Without ``fetch`` (or when the engine does not answer) it waits instead: until a line stamped
    after the moment it was asked has arrived (a model that keeps printing: everything before is
    in), or none has come for ``quiet`` seconds (a model that stopped), at most ``bound`` seconds.
    """

    def __init__(self, quiet: float = 0.5, bound: float = 5.0, fetch: Callable[[float | None], bytes] | None = None) -> None:
        self.quiet, self.bound, self.fetch = quiet, bound, fetch
        self.bytes = 0
        self.stamp = 0  # the engine's time (epoch nanoseconds) of the newest line delivered
        self._last = 0.0  # time.monotonic() of the last chunk
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        size, newest = stamped_size(chunk, 0)
        with self._lock:
            self.bytes += size
            self.stamp = max(self.stamp, newest)
            self._last = time.monotonic()

    def settled(self) -> int:
        if self.fetch is not None:
            with self._lock:
                counted, stamp = self.bytes, self.stamp
            try:  # the engine's since is inclusive and a float: ask a little early, keep only what is newer
                tail = self.fetch(stamp / 1e9 - 1e-6 if stamp else None)
            except Exception:
                pass  # the container is gone or the engine is busy: wait for the stream instead
            else:
                return counted + stamped_size(tail, stamp)[0]
        asked, end = time.time_ns(), time.monotonic() + self.bound
        while self.stamp < asked and time.monotonic() - self._last < self.quiet and time.monotonic() < end:
            time.sleep(0.05)
        return self.bytes


@functools.lru_cache(maxsize=64)
def _epoch_ns(day: bytes) -> int:
    """A stamp's whole seconds (``2026-12-04T20:07:05``, UTC) as epoch nanoseconds."""
    return calendar.timegm(time.strptime(day.decode(), "%Y-%m-%dT%H:%M:%S")) * 10**9


def stamped_size(chunk: bytes, after: int) -> tuple[int, int]:
    """(output bytes of the lines stamped after ``after`` ns, the newest stamp in ns) of a ``logs -t`` read.

    The engine stamps each line (a line over 16 KiB comes in stamped parts); the stamps are not output.
    Bytes before the first stamp (a frame split from its stamp) are output too; a read the engine
    answers from ``since`` on starts at a stamp, so it has none.
    """
    stamps = list(_STAMP.finditer(chunk))
    size, newest = stamps[0].start() if stamps else len(chunk), after
    for i, match in enumerate(stamps):
        day, fraction = match.groups()
        when = _epoch_ns(day) + int((fraction or b".")[1:].ljust(9, b"0")[:9])
        end = stamps[i + 1].start() if i + 1 < len(stamps) else len(chunk)
        if when > after:
            size += end - match.end()
        newest = max(newest, when)
    return size, newest


class DockerInstance:
    """One model container: started, sampled for memory/CPU, inspected and removed on stop."""

    def __init__(
        self,
        spec: ModelSpec,
        image: str,
        run_id: str,
        gpu_uuids: tuple[str, ...] = (),
        testrun: str | None = None,
        *,
        protocol: ServerFacts,
        ready_probe: ReadyProbe,
        sandbox: bool = False,
    ) -> None:
        self.spec = spec
        self.ready_probe = ready_probe
        self.endpoint = Endpoint("127.0.0.1", 0)
        #: host directory holding the adapter's Unix socket (network: none), else None
        self.socket_dir: Path | None = None
        self.startup_seconds = 0.0
        self._final: ResourceUsage | None = None
        self._samples: list[int] = []
        #: (time.time(), memory bytes, CPU seconds so far, GPU memory bytes or None) every 100 ms (cgroup files)
        self.timeline: list[tuple[float, int, float | None, int | None]] = []
        self._max_usage = 0
        self._cpu0: tuple[float, float] | None = None
        self._cpu_last: tuple[float, float] | None = None
        self._cgroup: CgroupReader | None = None
        self.reservation: Reservation | None = None
        self.on_stop: Callable[[], None] | None = None
        self._stop_sampling = threading.Event()
        self._logs = LogCounter(fetch=self._log_tail)
        self._log_stream: Any = None
        self._removal: threading.Thread | None = None
        self.port = protocol.port(spec.manifest)
        try:
            self.container = self._container(image, run_id, gpu_uuids, testrun, sandbox, protocol)
        except BaseException:  # nothing started yet, but the socket folder exists
            if self.socket_dir is not None:
                remove_socket_dir(self.socket_dir)
            raise

    def _container(
        self, image: str, run_id: str, gpu_uuids: tuple[str, ...], testrun: str | None, sandbox: bool, protocol: ServerFacts
    ) -> DockerContainer:
        """The testcontainers object, configured but not started."""
        spec = self.spec
        m = spec.manifest
        labels = {LABEL_RUN: run_id, LABEL_TESTRUN: testrun or run_id}
        plan = container_plan(spec, image, protocol=protocol, sandbox=sandbox, labels=labels, hf_cache=str(hf_cache_dir()))
        self.plan = plan
        if plan.readiness.unix_socket is not None:
            self.socket_dir = make_socket_dir()
            socket = self.socket_dir / Path(plan.readiness.unix_socket).name
            self.endpoint = Endpoint("sandbox", 0, unix_socket=str(socket), socket_owner=CONTAINER_UID)
        kwargs = docker_run_kwargs(plan, socket_dir=str(self.socket_dir) if self.socket_dir else None, gpu_uuids=gpu_uuids)
        kwargs["environment"]["VDBENCH_OPTIONS"] = options_json(spec)  # a value JSON cannot carry names its key
        kwargs["labels"].update(owner_labels())  # who may remove it: vdbench clean and other runs once this process is gone
        kwargs.update(neighbour_limits())
        for cache in m.caches:  # weights caches (e.g. VBench's): read-only, and only when the host has them
            if cache.host_path().is_dir():
                kwargs["volumes"][str(cache.host_path())] = {"bind": cache.target, "mode": "ro"}
        # testcontainers' with_kwargs() replaces what an earlier call gave rather than merging, and
        # create() is handed command/env/ports/volumes/tmpfs from its own attributes: set those there
        container = DockerContainer(image)
        container.env = kwargs.pop("environment")
        container.ports = kwargs.pop("ports")
        container.volumes = kwargs.pop("volumes")
        container.tmpfs = kwargs.pop("tmpfs")
        command = kwargs.pop("command")
        if command is not None:  # None: the image's own CMD starts the server (oip-v2)
            container.with_command(command)
        container.with_kwargs(**kwargs)
        container.waiting_for(AdapterReadyWait(self, plan.timeouts.startup))
        return container

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        try:
            self.container.start()
        except StartupError:
            self.stop()
            raise
        except Exception as exc:
            logs = self.logs()
            self.stop()
            raise StartupError(f"container of {self.spec.id} could not start: {exc}", logs) from exc
        except BaseException:  # Ctrl-C / SIGTERM while starting: the container must not outlive it
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        try:
            self._cgroup = find_cgroup(str(self._wrapped().id))
            self._record()
            self._cpu0 = self._cpu_last
            threading.Thread(target=self._sample, name=f"vdbench-stats-{self.spec.id}", daemon=True).start()
            threading.Thread(target=self._count_logs, name=f"vdbench-logs-{self.spec.id}", daemon=True).start()
        except BaseException:
            self.stop()
            raise

    def _count_logs(self) -> None:
        """Follow the container's output and count it: the log cap bounds the disk, this measures the noise."""
        try:
            self._log_stream = self._wrapped().logs(stream=True, follow=True, timestamps=True)
            for chunk in self._log_stream:
                self._logs.add(chunk)
        except Exception:
            pass  # the container went away: the count so far stands
        finally:
            with contextlib.suppress(Exception):
                if self._log_stream is not None:
                    self._log_stream.close()

    def _log_tail(self, since: float | None) -> bytes:
        """The engine's log lines (stamped) from ``since`` (epoch seconds) on, read at once; raises once gone."""
        return bytes(self._wrapped().logs(stream=False, timestamps=True, since=since))

    def _wrapped(self) -> Any:
        """The docker-py container, or None while none was created (a failed create or start)."""
        try:
            return self.container.get_wrapped_container()
        except ContainerStartException:
            return None

    def exited(self) -> str | None:
        wrapped = self._wrapped()
        if wrapped is None:
            return None
        try:
            wrapped.reload()
        except Exception as exc:
            return f"container is gone ({exc})"
        state = wrapped.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            why = "OOM-killed" if state.get("OOMKilled") else f"exit code {state.get('ExitCode')}"
            return why
        return None

    def logs(self, tail: int = 200) -> str:
        wrapped = self._wrapped()
        if wrapped is None:
            return ""
        try:
            return bytes(wrapped.logs(tail=tail)).decode(errors="replace")
        except Exception:
            return ""

    # -- measurements ----------------------------------------------------------------------
    def _stats(self) -> dict[str, Any]:
        """The engine's stats API: the fallback when the cgroup files are not visible (remote engine)."""
        try:
            return dict(self._wrapped().stats(stream=False, one_shot=True))
        except Exception:
            return {}

    def _read(self) -> tuple[int | None, int | None, float | None]:
        """(memory now, kernel peak, CPU seconds) from the cgroup, else from the stats API."""
        if self._cgroup is not None:
            reading = self._cgroup.read()
            if reading is None:
                return None, None, None
            return reading.memory, reading.peak, reading.cpu_seconds
        stats = self._stats()
        mem = stats.get("memory_stats", {})
        cpu = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")
        return mem.get("usage"), mem.get("max_usage"), (float(cpu) / 1e9 if cpu is not None else None)

    def _sample(self) -> None:
        interval = 0.1 if self._cgroup is not None else 1.0
        while not self._stop_sampling.wait(interval):
            self._record()

    def _record(self) -> None:
        memory, peak, cpu = self._read()
        if memory is not None:
            self._samples.append(int(memory))
            self.timeline.append((time.time(), int(memory), cpu, None))
            self._max_usage = max(self._max_usage, int(memory), int(peak or 0))
        if cpu is not None:
            self._cpu_last = (cpu, time.monotonic())

    def usage(self) -> ResourceUsage:
        if self._final is not None:
            return self._final
        self._record()
        cpu = None
        if self._cpu0 is not None and self._cpu_last is not None and self._cpu_last[1] > self._cpu0[1]:
            cpu = 100.0 * (self._cpu_last[0] - self._cpu0[0]) / (self._cpu_last[1] - self._cpu0[1])
        state: dict[str, Any] = {}
        wrapped = self._wrapped()
        if wrapped is not None:
            try:
                wrapped.reload()
                state = wrapped.attrs.get("State", {})
            except Exception:
                state = {}
        running = state.get("Status") == "running"
        gpu_memory, gpu_util = None, None
        if self.spec.manifest.resources.gpus and running:
            gpu_memory, gpu_util = gpu_usage_for_pids(self._host_pids())
        return ResourceUsage(
            peak_memory_bytes=self._max_usage or None,
            mean_memory_bytes=int(sum(self._samples) / len(self._samples)) if self._samples else None,
            cpu_percent=cpu,
            memory_limit_bytes=self.spec.manifest.resources.memory,
            oom_killed=bool(state.get("OOMKilled")),
            exit_code=None if running else state.get("ExitCode"),
            running=running,
            samples=len(self._samples),
            gpu_memory_bytes=gpu_memory,
            gpu_utilization=gpu_util,
            source="cgroup files" if self._cgroup is not None else "docker stats API",
            log_bytes=self._logs.settled(),
        )

    def _host_pids(self) -> set[int]:
        """The container's processes as host PIDs (what NVML reports)."""
        try:
            top = self._wrapped().top()
            column = top["Titles"].index("PID")
            return {int(row[column]) for row in top["Processes"]}
        except Exception:
            return set()

    def stop(self) -> ResourceUsage:
        """Read the final state (OOM, exit code), then remove the container; never raises.

        The removal goes on in the background (``removed()`` waits for it): the engine spends most
        of it taking the container's network down. What the model held (CPUs, memory, GPUs) is given
        back (``on_stop``) as soon as its processes are gone, so the next model need not wait for that.
        """
        if self._final is not None:
            return self._final
        try:
            usage = self.usage() if self._wrapped() is not None else ResourceUsage(running=False)
        except Exception:
            usage = ResourceUsage(running=False)
        self._stop_sampling.set()
        usage.running = False
        self._final = usage
        removal = threading.Thread(target=self._remove, name=f"vdbench-remove-{self.spec.id}")
        try:
            removal.start()
            self._removal = removal
        except RuntimeError:  # no thread to be had: remove it here and now
            self._remove()
        deadline = time.monotonic() + REMOVE_WAIT
        try:
            while removal.is_alive() and not self._processes_gone() and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:  # a Ctrl-C in this wait still gives the reservation back (the removal goes on)
            if self.on_stop is not None:
                self.on_stop()
        return usage

    def _processes_gone(self) -> bool:
        """True once the container's cgroup holds no process (False where the cgroup files are not visible)."""
        return self._cgroup is not None and self._cgroup.emptied()

    def _remove(self) -> None:
        wrapped = self._wrapped()
        if wrapped is not None:
            with contextlib.suppress(Exception):  # already gone; the session sweep double-checks
                wrapped.remove(force=True, v=True)
        if self.socket_dir is not None:
            remove_socket_dir(self.socket_dir)

    def removed(self, timeout: float = REMOVE_WAIT) -> bool:
        """Wait for the background removal that ``stop()`` began; True once it has ended (or none began)."""
        if self._removal is not None:
            self._removal.join(timeout)
            return not self._removal.is_alive()
        return True


def build_model_image(client: Any, spec: ModelSpec, log_dir: Path, stream: Any = None) -> BuildInfo:
    """Bootstrap the model's vdbench base if needed, then build its content-addressed image."""
    from pytest_vdbench.runtime.bases import base_tag, ensure_base, find_recipe
    from pytest_vdbench.runtime.cogyaml import CogYamlError, image_source
    from pytest_vdbench.runtime.images import ImageBuildError, build_image, plan_image

    image = spec.manifest.image
    outside = spec.outside(spec.context_dir, "image.context")
    if outside is not None:  # validated at collection too; checked again where the context is read
        raise ImageBuildError(spec.name, f"{outside} ({spec.path})", [], None)
    if find_recipe(image.base) is not None:
        ensure_base(client, image.base, stream=stream)
    tag = base_tag(image.base)
    try:
        base, dockerfile, generated, inputs = image_source(spec)
    except (CogYamlError, OSError) as exc:
        raise ImageBuildError(spec.name, str(exc), [], None) from None
    if find_recipe(base) is not None:
        ensure_base(client, base, stream=stream)
    tag = base_tag(base)
    try:
        plan = plan_image(spec.context_dir, dockerfile, image.args, tag, client=client, generated=generated, inputs=inputs)
    except FileNotFoundError as exc:
        raise ImageBuildError(spec.name, f"{exc} (image.context / image.dockerfile in {spec.path})", [], None) from None
    network = "none" if spec.manifest.sandbox.build_network == "none" else None
    result = build_image(client, plan, spec.name, log_dir, stream, network_mode=network, timeout=spec.manifest.timeouts.build)
    return BuildInfo(
        image=result.tag,
        image_id=result.image_id,
        size_bytes=result.size_bytes,
        build_seconds=result.build_seconds,
        cached=result.cached,
        log_path=str(result.log_path),
        extra={"base": tag, "hash": plan.digest},
    )


#: how long a model waits for GPUs/CPUs/memory held by other models (--vdbench-reserve-timeout)
RESERVE_TIMEOUT = 600.0


def ledger_path(testrun: str) -> Path:
    """The ledger file of one test run, in the temporary folder (its lock file is ``<path>.lock``)."""
    return Path(tempfile.gettempdir()) / f"vdbench-ledger-{testrun}.json"


def remove_ledger(path: Path) -> None:
    """Delete a finished run's ledger and its lock file (nobody of that run reserves any more)."""
    for file in (path, Path(f"{path}.lock")):
        file.unlink(missing_ok=True)


def default_ledger(testrun: str | None = None) -> Ledger:
    """The run's ledger: one file shared by every xdist worker of this test run (``testrun``)."""
    host = probe_host()
    inventory = Inventory(tuple((g.uuid, g.memory_total) for g in host.gpus), float(host.cpus), host.memory_total)
    return Ledger(ledger_path(testrun or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"), inventory)


def options_json(spec: ModelSpec) -> str:
    """The adapter's ``options`` as JSON; a value JSON cannot carry is a StartupError naming its key."""
    import json

    where = non_json_key(spec.manifest.options, "options")
    if where is not None:
        key, value = where
        raise StartupError(
            f"{spec.path}: {key}: {value!r} ({type(value).__name__}) cannot be sent to the adapter as JSON; "
            "quote it in the manifest (a YAML date or timestamp is not a string)"
        )
    return json.dumps(spec.manifest.options, allow_nan=False)


def non_json_key(value: Any, key: str) -> tuple[str, Any] | None:
    """The dotted key of the first value below ``value`` that strict JSON cannot carry, else None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{key}.{k}", k
            found = non_json_key(v, f"{key}.{k}")
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = non_json_key(v, f"{key}[{i}]")
            if found is not None:
                return found
        return None
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return None
    return key, value


class DockerRuntime:
    """Build each model's image once, run it with testcontainers, sweep the run's containers at exit."""

    name = "docker"

    def __init__(
        self,
        log: Callable[[str], None] | None,
        work_dir: Path,
        ledger: Ledger | None = None,
        testrun: str | None = None,
        *,
        protocols: ServerLookup,
        ready_probe: ReadyProbe,
        sandbox: bool = False,
        is_worker: bool = False,
        reserve_timeout: float = RESERVE_TIMEOUT,
    ) -> None:
        """``log``: where build output streams (the terminal with -v), None to keep it in the log file only."""
        import docker

        self.protocols = protocols
        self.ready_probe = ready_probe
        testcontainers_config.ryuk_disabled = True
        self.log = log
        self.is_worker = is_worker  # xdist workers share the ledger file: the controller removes it
        self.client = docker.from_env()
        self.run_id = uuid.uuid4().hex[:12]  # this process's containers (its own sweep)
        self.testrun = testrun or self.run_id  # the whole run's, across xdist workers (the controller's sweep)
        self.work_dir = work_dir
        self._builds: dict[str, BuildInfo] = {}
        self.ledger = ledger if ledger is not None else default_ledger(testrun)
        self._instances: list[DockerInstance] = []
        self.sandbox = sandbox  # every model with network: none (--vdbench-sandbox)
        self.reserve_timeout = reserve_timeout
        if not is_worker:  # a run killed before (SIGKILL) left its containers: gone with their owner
            sweep_dead(self.client)

    def prepare(self, spec: ModelSpec) -> BuildInfo:
        if spec.id in self._builds:
            return self._builds[spec.id]
        log = self.log
        stream = (lambda line: log(f"[build {spec.name}] {line}")) if log is not None else None
        info = build_model_image(self.client, spec, self.work_dir / "build-logs", stream=stream)
        self._builds[spec.id] = info
        return info

    def start(self, spec: ModelSpec) -> DockerInstance:
        descriptor = self.protocols.get(spec.manifest.protocol)
        protocol = descriptor.name
        if self.sandbox and not descriptor.unix_socket:
            raise RuntimeUnavailable(
                f"--vdbench-sandbox runs models with network: none, reached over a Unix socket; a {protocol} "
                "server listens on TCP only, so this model cannot run sandboxed"
            )
        info = self.prepare(spec)
        assert info.image is not None
        r = spec.manifest.resources
        need = Need(gpus=r.gpus, gpu_memory=r.gpu_memory, cpus=r.cpus, memory=r.memory)
        try:
            reservation = self.ledger.reserve(need, timeout=self.reserve_timeout, label=spec.id)
        except DoesNotFit as exc:
            raise StartupError(f"{spec.id}: {exc}") from None
        except ReservationTimeout as exc:  # its text starts with the model's id and names the holders
            raise StartupError(str(exc)) from None
        # from here on every way out that is not a started instance gives the reservation back:
        # a leaked one makes the next model wait for resources nobody uses
        instance: DockerInstance | None = None
        try:
            instance = DockerInstance(
                spec, info.image, self.run_id, reservation.gpu_uuids, self.testrun,
                protocol=descriptor, ready_probe=self.ready_probe, sandbox=self.sandbox,
            )  # fmt: skip
            instance.reservation = reservation
            instance.on_stop = lambda: self.ledger.release(reservation)
            self._instances.append(instance)
            instance.start()
        except BaseException as exc:
            if instance is not None:
                instance.stop()  # idempotent; releases through on_stop
            self.ledger.release(reservation)  # a no-op when on_stop already did
            if isinstance(exc, Exception) and not isinstance(exc, StartupError):
                raise StartupError(f"container of {spec.id} could not start: {type(exc).__name__}: {exc}") from exc
            raise
        return instance

    def close(self) -> None:
        for instance in self._instances:
            instance.stop()
        for instance in self._instances:
            instance.removed()
        sweep(self.client, {LABEL_RUN: self.run_id})
        self.client.close()
        if not self.is_worker:
            remove_ledger(self.ledger.path)


def sweep_dead(client: Any) -> tuple[int, int]:
    """Remove the vdbench containers whose owning process is gone (host + pid labels, this host);
    returns (removed, kept): kept are live runs', other hosts' and unlabelled (older) ones."""
    from pytest_vdbench.runtime.owners import owner_gone

    removed = kept = 0
    for container in client.containers.list(all=True, filters={"label": [LABEL_RUN]}):
        labels = container.labels or {}
        if not owner_gone({"host": labels.get(LABEL_HOST), "pid": labels.get(LABEL_PID)}):
            kept += 1
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except Exception:
            continue
    return removed, kept


def sweep(client: Any, labels: dict[str, str]) -> int:
    """Force-remove every container carrying ``labels`` (the run's, or all vdbench's); returns count."""
    filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True, v=True)
            removed += 1
        except Exception:
            continue
    return removed


def sweep_testrun(testrun: str) -> int:
    """The xdist controller's sweep, once every worker has ended: remove the run's ledger file (the
    workers shared it; none of them owns its removal) and the containers of workers that died before cleanup."""
    remove_ledger(ledger_path(testrun))
    if docker_unavailable() is not None:
        return 0
    import docker

    client = docker.from_env()
    try:
        return sweep(client, {LABEL_TESTRUN: testrun})
    finally:
        client.close()
