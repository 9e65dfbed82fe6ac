"""One container plan per (model, variant): what every runtime and exporter renders, decided once.

``container_plan(spec, image, protocol=...)`` is a pure function of the resolved manifest, the
sandbox flag and the protocol's descriptor (``protocols.ProtocolDescriptor``, seen here as the
runtime's ``ServerFacts``: the runtime layer imports no protocol module): image, command,
environment, port, limits, hardening, mounts, labels, readiness probe and timeouts, as a frozen
``ContainerPlan``. The Docker runtime renders it as
docker-py ``run()`` arguments (``docker_run_kwargs``), ``vdbench compose`` as a compose service,
``vdbench k8s`` as a Job + Service and the Slurm runtime as a batch script. Change the hardening
here and all of them change; none of them holds its own copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime import ServerFacts
from pytest_vdbench.timing import TimingPolicy

__all__ = [
    "DEFAULT_HARDENING",
    "HF_CACHE_TARGET",
    "LABEL_MANIFEST",
    "LABEL_MODEL",
    "LABEL_RUN",
    "LABEL_TESTRUN",
    "SOCKET_DIR",
    "ContainerPlan",
    "Hardening",
    "Limits",
    "Mount",
    "Readiness",
    "Timeouts",
    "container_plan",
    "probe_script",
]

LABEL_RUN = "org.vdbench.run"
LABEL_MODEL = "org.vdbench.model"
LABEL_TESTRUN = "org.vdbench.testrun"
LABEL_MANIFEST = "org.vdbench.manifest"
SOCKET_DIR = "/run/vdbench"  # where a sandboxed container's adapter socket lives (a mounted directory)
SOCKET_PATH = f"{SOCKET_DIR}/adapter.sock"
HF_CACHE_TARGET = "/hf-cache"
#: calls beyond the warmup and timed rounds a case may cost: health, determinism's second call,
#: quality's extra, and test_generate's cache audit (3 fresh seeds, each with a repeat of the case's)
_EXTRA_CALLS = 3 + 2 * 3


@dataclass(frozen=True)
class Limits:
    """What the container may use. ``memswap == memory``: no swap, exceeding memory is an OOM kill."""

    cpus: float
    memory: int
    memswap: int
    shm: int
    pids: int
    gpus: int
    gpu_memory: int  # per GPU; a scheduling constraint (node selector, Slurm constraint), not a cgroup limit


@dataclass(frozen=True)
class Hardening:
    """How the container is locked down, whatever runs it."""

    user: int = 10001
    group: int = 10001
    cap_drop: tuple[str, ...] = ("ALL",)
    no_new_privileges: bool = True
    read_only_root: bool = True
    tmpfs: tuple[tuple[str, str], ...] = (("/tmp", "size=1g"),)  # (path, mount options): the only writable paths

    @property
    def user_spec(self) -> str:
        """``uid:gid`` as docker and compose take it."""
        return f"{self.user}:{self.group}"

    @property
    def security_opt(self) -> tuple[str, ...]:
        return ("no-new-privileges",) if self.no_new_privileges else ()


DEFAULT_HARDENING = Hardening()


@dataclass(frozen=True)
class Mount:
    """A bind mount. ``source`` None: the renderer decides (a temp dir, ``${HF_HUB_CACHE}``, a hostPath)."""

    name: Literal["hf-cache", "sockets"]
    target: str
    read_only: bool
    source: str | None = None


@dataclass(frozen=True)
class Readiness:
    """The protocol's readiness probe: GET ``path`` answers 200 (and, when ``statuses``, its JSON
    field ``json_key`` is one of them); over ``unix_socket`` when set, else TCP ``port``."""

    path: str
    port: int
    statuses: tuple[str, ...] = ()
    json_key: str = "status"
    unix_socket: str | None = None
    start_period: float = 120.0
    interval: float = 5.0
    timeout: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class Timeouts:
    """``startup``/``generate``/``fit`` from the manifest; ``deadline``: an upper bound on the whole
    job's life (startup plus every case's calls at their timeouts), for ``activeDeadlineSeconds``."""

    startup: float
    generate: float
    fit: float
    deadline: float


@dataclass(frozen=True)
class ContainerPlan:
    """Everything one model container is: rendered by docker, compose, k8s and Slurm."""

    model: str  # the spec id (model-variant)
    image: str
    command: tuple[str, ...] | None  # None: the image's CMD
    env: tuple[tuple[str, str], ...]  # fixed values, in order
    env_from_host: tuple[str, ...]  # names whose values come from where the plan runs (requires.env)
    port: int  # the port the server listens on inside the container
    network: Literal["bridge", "none"]
    limits: Limits
    hardening: Hardening
    mounts: tuple[Mount, ...]
    labels: tuple[tuple[str, str], ...]
    readiness: Readiness
    timeouts: Timeouts
    protocol: str
    #: True: the command's listen arguments name ``port`` (a launcher picking its own port re-renders them)
    listen_port_arg: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def with_labels(self, **labels: str) -> ContainerPlan:
        """The same plan with more labels (the runtime's run ids are known only when it runs)."""
        return replace(self, labels=tuple({**dict(self.labels), **labels}.items()))


def _deadline(spec: ModelSpec, timed_seconds: float | None = None) -> float:
    """Startup, then per case: warmup and extra calls at the generate timeout, the adaptive timed
    rounds (they stop once they pass ``max_duration``; the round in flight may take one more generate
    timeout), the opt-in load levels (each stops at ``load.duration`` plus its calls in flight), fits.

    ``timed_seconds``: the run's --vdbench-max-duration (the manifest's ``timing.max_duration`` wins).
    """
    m = spec.manifest
    t = m.timeouts
    timed = m.timing.max_duration or timed_seconds or TimingPolicy().max_duration
    rounds = min(m.timing.max_rounds * t.generate if m.timing.max_rounds else math.inf, timed + t.generate)
    per_case = (m.warmup_rounds + _EXTRA_CALLS) * t.generate + rounds
    if m.load is not None:
        per_case += len(m.load.concurrency) * (m.load.duration + t.generate)
    fits = len(m.cases) if m.modality == "tabular" else 0
    return t.startup + len(m.cases) * per_case + fits * t.fit


def container_plan(
    spec: ModelSpec,
    image: str,
    *,
    protocol: ServerFacts,
    sandbox: bool = False,
    unix_socket: bool = True,
    labels: Mapping[str, str] | None = None,
    hf_cache: str | None = None,
    hardening: Hardening | None = None,
    timed_seconds: float | None = None,
) -> ContainerPlan:
    """The plan of ``spec`` running ``image``.

    ``sandbox`` (or the manifest's ``sandbox.network: none``) gives the container no network; with
    ``unix_socket`` the server then listens on ``SOCKET_PATH`` in a mounted directory (the Docker
    runtime); without it (Kubernetes: a NetworkPolicy isolates instead) it keeps TCP. ``hf_cache``:
    the host's Hugging Face cache for ``requires.weights`` (None: the renderer's own default).
    ``timed_seconds``: how long a case's timed rounds may last (--vdbench-max-duration), for the deadline.
    """
    m = spec.manifest
    proto = protocol
    port = proto.port(m)
    isolated = sandbox or m.sandbox.network == "none"
    on_socket = isolated and unix_socket and proto.unix_socket
    listen = ["--unix-socket", SOCKET_PATH] if on_socket else ["--host", "0.0.0.0", "--port", str(port)]
    command = proto.command(m, listen)  # the manifest's command if it sets one
    # default=str: a value JSON cannot carry (a YAML date) is the Docker runtime's error, naming its key
    env = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "VDBENCH_OPTIONS": json.dumps(m.options, default=str)}
    env.update({**proto.server_env(m, port), **m.env})
    mounts: list[Mount] = []
    if on_socket:
        mounts.append(Mount("sockets", SOCKET_DIR, read_only=False))
    if m.requires.weights:
        mounts.append(Mount("hf-cache", HF_CACHE_TARGET, read_only=True, source=hf_cache))
        env.update(HF_HUB_CACHE=HF_CACHE_TARGET, HF_HUB_OFFLINE="1")
    r = m.resources
    t = m.timeouts
    return ContainerPlan(
        model=spec.id,
        image=image,
        command=tuple(command) if command is not None else None,
        env=tuple(env.items()),
        env_from_host=tuple(m.requires.env),
        port=port,
        network="none" if isolated else "bridge",
        limits=Limits(r.cpus, r.memory, r.memory, r.shm, r.pids, r.gpus, r.gpu_memory),
        hardening=hardening or DEFAULT_HARDENING,
        mounts=tuple(mounts),
        labels=tuple({LABEL_MODEL: spec.id, LABEL_MANIFEST: spec.path.name, **(labels or {})}.items()),
        readiness=Readiness(
            path=proto.ready_path,
            port=port,
            statuses=proto.ready_json[1] if proto.ready_json else (),
            json_key=proto.ready_json[0] if proto.ready_json else "status",
            unix_socket=SOCKET_PATH if on_socket else None,
            start_period=t.startup,
        ),
        timeouts=Timeouts(t.startup, t.generate, t.fit, _deadline(spec, timed_seconds)),
        protocol=proto.name,
        listen_port_arg=m.command is None and not on_socket and proto.name == "native",
    )


def probe_script(readiness: Readiness) -> str:
    """A Python one-liner run inside the container that exits 0 when it is ready (compose
    healthchecks, k8s exec probes): urlopen raises on 503 (loading) and 500 (setup failed)."""
    if readiness.unix_socket is not None:
        return (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(4); "
            f"s.connect('{readiness.unix_socket}'); s.sendall(b'GET {readiness.path} HTTP/1.0\\r\\n\\r\\n'); "
            "sys.exit(0 if b' 200 ' in s.recv(64) else 1)"
        )
    url = f"http://127.0.0.1:{readiness.port}{readiness.path}"
    if readiness.statuses:  # a 200 is not enough: the JSON status says ready
        return (
            "import json,sys,urllib.request; "
            f"r=json.load(urllib.request.urlopen('{url}', timeout=4)); "
            f"sys.exit(0 if r.get({readiness.json_key!r}) in {readiness.statuses!r} else 1)"
        )
    return f"import urllib.request; urllib.request.urlopen('{url}', timeout=4)"
