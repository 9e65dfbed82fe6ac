"""Runtimes start a model and hand back an ``Instance``; tests only ever see its ``Endpoint``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_vdbench.manifest import ModelSpec

__all__ = [
    "BuildInfo",
    "Endpoint",
    "Instance",
    "ResourceUsage",
    "Runtime",
    "RuntimeUnavailable",
    "StartupError",
    "wait_ready",
]


@dataclass(frozen=True)
class Endpoint:
    """Where an adapter server answers: a loopback address, or a Unix socket (``network: none``).

    With ``unix_socket`` set, ``host``/``port`` are only labels: requests go through the socket.
    """

    host: str
    port: int
    unix_socket: str | None = None

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"http+unix://{self.unix_socket}"
        return f"http://{self.host}:{self.port}"


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


class Runtime(Protocol):
    """Starts models. Adding one means adding a module here and a name in ``RUNTIMES``."""

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


def wait_ready(
    probe: Callable[[], tuple[int, dict[str, object]]],
    *,
    timeout: float,
    alive: Callable[[], str | None],
    logs: Callable[[], str],
    what: str,
    budget: float | None = None,
) -> float:
    """Poll the readiness endpoint until 200; return seconds waited.

    ``probe`` returns (status, body) and raises OSError while nothing listens; ``alive`` returns a
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
            status, body = probe()
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
