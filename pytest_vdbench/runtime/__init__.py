"""Runtimes start a model and hand back an ``Instance``; tests only ever see its ``Endpoint``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_vdbench.endpoint import Endpoint

if TYPE_CHECKING:
    from pytest_vdbench.manifest import Manifest, ModelSpec

__all__ = [
    "BuildInfo",
    "Endpoint",
    "Instance",
    "ReadyProbe",
    "ResourceUsage",
    "Runtime",
    "RuntimeContext",
    "RuntimeRegistry",
    "RuntimeUnavailable",
    "ServerFacts",
    "ServerLookup",
    "StartupError",
    "builtin_runtimes",
    "wait_ready",
]


@dataclass
class ResourceUsage:
    """What a running model used so far (None where the runtime cannot tell)."""

    peak_memory_bytes: int | None = None
    mean_memory_bytes: int | None = None
    cpu_percent: float | None = None
    memory_limit_bytes: int | None = None
    oom_killed: bool = False
    exit_code: int | None = None
    running: bool = True
    samples: int = 0
    gpu_memory_bytes: int | None = None
    gpu_utilization: float | None = None
    source: str = ""
    #: the scheduler's word on the end, e.g. ``Slurm job 12 CANCELLED`` (None for local runtimes)
    detail: str | None = None
    log_bytes: int | None = None  # everything the model wrote to stdout/stderr so far


@dataclass
class BuildInfo:
    """The image a model runs from (docker) or nothing (process)."""

    image: str | None = None
    image_id: str | None = None
    size_bytes: int | None = None
    build_seconds: float | None = None
    cached: bool = False
    log_path: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class StartupError(Exception):
    """The model never became ready: carries the status seen, the setup traceback and logs."""

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message + (f"\n--- last container/process logs ---\n{logs}" if logs else ""))
        self.reason = message
        self.logs = logs


class RuntimeUnavailable(Exception):
    """This runtime cannot run this model on this host (e.g. its libraries are not installed here)."""


class Instance(Protocol):
    """A started model. ``stop()`` must be safe to call twice and must never raise."""

    endpoint: Endpoint
    startup_seconds: float

    def logs(self, tail: int = 200) -> str: ...

    def usage(self) -> ResourceUsage: ...

    def stop(self) -> ResourceUsage: ...


#: (manifest, endpoint) -> what to poll until the model is ready; the session hands runtimes the
#: protocol client's ``ready`` this way, so a runtime imports no client
ReadyProbe = Callable[["Manifest", Endpoint], Callable[..., tuple[int, dict[str, Any]]]]


class ServerFacts(Protocol):
    """What a runtime needs of a wire protocol (``protocols.ProtocolDescriptor`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def unix_socket(self) -> bool: ...

    @property
    def ready_path(self) -> str: ...

    @property
    def ready_json(self) -> tuple[str, tuple[str, ...]] | None:
        """The readiness answer's JSON field and the values that mean ready (None: HTTP 200 is)."""
        ...

    def port(self, manifest: Manifest) -> int: ...

    def command(self, manifest: Manifest, listen: list[str]) -> list[str] | None: ...

    def server_env(self, manifest: Manifest, port: int) -> dict[str, str]: ...


class ServerLookup(Protocol):
    """The run's protocols by name (``protocols.ProtocolRegistry`` is one)."""

    def get(self, name: str) -> ServerFacts: ...


class Runtime(Protocol):
    """Starts models. Adding one: a module with a class like this and a ``pytest_vdbench_add_runtimes`` hook."""

    name: str

    def prepare(self, spec: ModelSpec) -> BuildInfo:
        """Everything before start (image build); idempotent and cached per spec."""
        ...

    def start(self, spec: ModelSpec) -> Instance:
        """Start and wait until ready; raise ``StartupError`` (logs attached) otherwise."""
        ...

    def close(self) -> None:
        """Session end: stop whatever is still running."""
        ...


@dataclass
class RuntimeContext:
    """What the session gives a runtime factory (no ``pytest.Config``: runtimes know nothing of tests)."""

    work_dir: Path
    testrun: str
    sandbox: bool
    #: ``--vdbench-runtime`` was given explicitly (an unavailable engine is then an error, not a fallback)
    explicit: bool
    #: the run's protocols (``pytest_vdbench.protocols.ProtocolRegistry``) and their readiness probe
    protocols: ServerLookup
    ready_probe: ReadyProbe
    #: write a line for the user (a notice, or a build log line with -v)
    log: Callable[[str], None]
    verbose: bool = False
    is_worker: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    #: how long a model waits for resources other models hold (--vdbench-reserve-timeout)
    reserve_timeout: float = 600.0
    #: how long one case's timed rounds may last (--vdbench-max-duration): bounds a batch job's life
    timed_seconds: float | None = None


#: (context) -> a runtime; raise RuntimeUnavailable (with the reason) when it cannot run on this host
RuntimeFactory = Callable[[RuntimeContext], "Runtime"]


class RuntimeRegistry:
    """Runtimes by name: ``docker`` and ``process`` built in, more through the hook."""

    def __init__(self) -> None:
        self._factories: dict[str, RuntimeFactory] = {}
        self._sweeps: dict[str, tuple[Callable[[str], int], str]] = {}

    def add(
        self, name: str, factory: RuntimeFactory, *, sweep_testrun: Callable[[str], int] | None = None,
        swept: str = "container(s)",
    ) -> None:  # fmt: skip
        """``sweep_testrun(testrun)``: remove what crashed xdist workers of that run left; returns how many
        (``swept`` names what it counts, for the summary line)."""
        if name in self._factories and self._factories[name] is not factory:
            raise ValueError(f"runtime {name!r} is already registered")
        self._factories[name] = factory
        if sweep_testrun is not None:
            self._sweeps[name] = (sweep_testrun, swept)

    def sweep_testrun(self, name: str, testrun: str) -> str | None:
        """The xdist controller's sweep at session end: ``"2 container(s)"``, or None when nothing was left."""
        sweep, swept = self._sweeps.get(name, (None, ""))
        removed = sweep(testrun) if sweep is not None else 0
        return f"{removed} {swept}" if removed else None

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, name: str, context: RuntimeContext) -> Runtime:
        try:
            factory = self._factories[name]
        except KeyError:
            raise RuntimeUnavailable(f"no runtime {name!r}; known: {', '.join(self.names())}") from None
        return factory(context)


def _docker(context: RuntimeContext) -> Runtime:
    from pytest_vdbench.runtime.docker import DockerRuntime, docker_unavailable

    reason = docker_unavailable()
    if reason is not None:
        raise RuntimeUnavailable(reason)
    log = context.log if context.verbose else None
    return DockerRuntime(
        log, context.work_dir, testrun=context.testrun, protocols=context.protocols, ready_probe=context.ready_probe,
        sandbox=context.sandbox, is_worker=context.is_worker, reserve_timeout=context.reserve_timeout,
    )  # fmt: skip


def _docker_sweep(testrun: str) -> int:
    from pytest_vdbench.runtime.docker import sweep_testrun

    return sweep_testrun(testrun)


def _process(context: RuntimeContext) -> Runtime:
    from pytest_vdbench.runtime.process import ProcessRuntime

    return ProcessRuntime(context.work_dir / "logs", context.ready_probe)


def _slurm(context: RuntimeContext) -> Runtime:
    from pytest_vdbench.runtime.docker import docker_unavailable
    from pytest_vdbench.runtime.slurm import SlurmRuntime

    reason = docker_unavailable()  # images are built on this host, then pushed to the registry
    if reason is not None:
        raise RuntimeUnavailable(f"the slurm runtime builds images here: {reason}")
    return SlurmRuntime(context)


def _slurm_sweep(testrun: str) -> int:
    from pytest_vdbench.runtime.slurm import cancel_jobs, slurm_unavailable

    return 0 if slurm_unavailable() is not None else len(cancel_jobs(f"run={testrun}"))


def builtin_runtimes() -> RuntimeRegistry:
    registry = RuntimeRegistry()
    registry.add("docker", _docker, sweep_testrun=_docker_sweep)
    registry.add("process", _process)
    registry.add("slurm", _slurm, sweep_testrun=_slurm_sweep, swept="Slurm job(s)")
    return registry


def wait_ready(
    probe: Callable[..., tuple[int, dict[str, object]]],
    *,
    timeout: float,
    alive: Callable[[], str | None],
    logs: Callable[[], str],
    what: str,
    budget: float | None = None,
) -> float:
    """Poll the readiness endpoint until 200; return seconds waited.

    ``probe(timeout=...)`` returns (status, body) within that many seconds and raises OSError while
    nothing listens (or nothing answers in time); ``alive`` returns a
    reason string once the process/container has exited. A 500 means ``load()`` failed: stop at
    once with its traceback (or the protocol's setup logs) instead of waiting out the timeout.
    """
    start = time.monotonic()
    delay = 0.01
    last = "no answer yet"
    next_alive_check = start
    while True:
        if time.monotonic() >= next_alive_check:  # asking the engine costs more than a probe
            dead = alive()
            if dead:
                raise StartupError(f"{what} exited before it was ready: {dead}", logs())
            next_alive_check = time.monotonic() + 0.25
        try:
            # each probe is bounded by what is left of the wait: a server dripping its answer cannot stretch it
            status, body = probe(timeout=max(0.05, min(5.0, timeout - (time.monotonic() - start))))
        except OSError as exc:
            last = f"not listening ({exc.__class__.__name__})"
        else:
            if status == 200:
                return time.monotonic() - start
            if status == 500:  # the body may name the failed phase (e.g. Cog's setup())
                raise StartupError(f"{what} failed in {body.get('phase') or 'load()'}:\n{body.get('error') or body}", logs())
            last = f"readiness {status} {body.get('status', '')}".strip()
        elapsed = time.monotonic() - start
        if elapsed >= timeout:
            raise StartupError(
                f"{what} was not ready within the startup timeout of {budget or timeout:g}s (last: {last}); "
                "raise timeouts.startup in the manifest if the model needs longer",
                logs(),
            )
        time.sleep(min(delay, max(0.0, timeout - elapsed)))
        delay = min(delay * 1.5, 0.05)  # a readiness probe is cheap; a late one adds to every startup
