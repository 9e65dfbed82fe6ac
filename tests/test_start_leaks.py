"""Whatever fails after ``ledger.reserve`` in the docker runtime gives the reservation back.

A failure is injected at each step of container start (no engine needed: the docker client and
the container are fakes); after each, the ledger is empty, the container removed, the socket
folder gone, and a model needing the whole host gets its reservation at once.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_vdbench.runtime.docker as docker_runtime
from helpers import toy_manifest
from pytest_vdbench.manifest import ModelSpec, load_manifest
from pytest_vdbench.protocols import PROTOCOLS, ready_probe
from pytest_vdbench.runtime import BuildInfo, StartupError
from pytest_vdbench.runtime.ledger import Inventory, Ledger, Need, ReservationTimeout

HOST = Inventory(gpus=(), cpus=2, memory=4 * 2**30)


class FakeWrapped:
    """The docker-py container the fake start creates."""

    def __init__(self) -> None:
        self.id = "fake0123456789"
        self.short_id = self.id[:10]
        self.attrs: dict[str, Any] = {"State": {"Status": "running"}}
        self.removed = False

    def reload(self) -> None:
        return None

    def logs(self, tail: int = 200) -> bytes:
        return b"adapter said goodbye\n"

    def stats(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def top(self) -> dict[str, Any]:
        return {"Titles": ["PID"], "Processes": []}

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.removed = True
        self.attrs = {"State": {"Status": "removed"}}


class Engine:
    """What the fakes record: the containers created."""

    def __init__(self) -> None:
        self.created: list[FakeWrapped] = []


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    seen = Engine()

    def fake_start(self: Any) -> Any:
        self._container = FakeWrapped()
        seen.created.append(self._container)
        return self

    monkeypatch.setattr("testcontainers.core.container.DockerClient", lambda **kw: object())
    monkeypatch.setattr(docker_runtime.DockerContainer, "start", fake_start)
    monkeypatch.setattr(docker_runtime, "find_cgroup", lambda cid: None)
    no_containers = types.SimpleNamespace(list=lambda **kw: [])  # the new run's sweep of dead runs finds none
    monkeypatch.setattr("docker.from_env", lambda **kw: types.SimpleNamespace(close=lambda: None, containers=no_containers))
    return seen


def spec_for(tmp_path: Path, **overrides: Any) -> ModelSpec:
    doc = toy_manifest("leaky", resources={"cpus": 2, "memory": "1g"}, **overrides)
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_manifest(path, tmp_path)[0]


@pytest.fixture
def make_runtime(tmp_path: Path, engine: Engine) -> Iterator[Callable[..., docker_runtime.DockerRuntime]]:
    made: list[docker_runtime.DockerRuntime] = []

    def make(spec: ModelSpec, *, sandbox: bool = False) -> docker_runtime.DockerRuntime:
        ledger = Ledger(tmp_path / "ledger.json", HOST, poll=0.01)
        runtime = docker_runtime.DockerRuntime(
            None, tmp_path / "work", ledger, protocols=PROTOCOLS, sandbox=sandbox, reserve_timeout=0.05,
            ready_probe=lambda manifest, endpoint: ready_probe(manifest, endpoint, PROTOCOLS),
        )  # fmt: skip
        runtime._builds[spec.id] = BuildInfo(image="vdbench/leaky:0")  # no build: prepare() returns it
        made.append(runtime)
        return runtime

    yield make


def _raise(exc: BaseException) -> Callable[..., Any]:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raiser


class _NoThread:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


#: the steps whose failure comes before the fake engine creates a container (the others must find one)
BEFORE_CREATE = {"configure the container", "create/start the container", "wait for readiness"}

#: step name -> how to make that step fail (monkeypatch applied before start)
STEPS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "configure the container": lambda mp: mp.setattr(
        docker_runtime.DockerContainer, "with_kwargs", _raise(ValueError("bad run argument"))
    ),
    "create/start the container": lambda mp: mp.setattr(
        docker_runtime.DockerContainer, "start", _raise(RuntimeError("500 Server Error: no space left on device"))
    ),
    "wait for readiness": lambda mp: mp.setattr(
        docker_runtime.DockerContainer, "start", _raise(StartupError("container of leaky was not ready"))
    ),
    "find the cgroup": lambda mp: mp.setattr(docker_runtime, "find_cgroup", _raise(PermissionError("/sys/fs/cgroup"))),
    "first sample": lambda mp: mp.setattr(docker_runtime.DockerInstance, "_read", _raise(OSError("stats API gone"))),
    "sampler thread": lambda mp: mp.setattr(
        docker_runtime, "threading", types.SimpleNamespace(Event=threading.Event, Lock=threading.Lock, Thread=_NoThread)
    ),
}


def assert_nothing_held(runtime: docker_runtime.DockerRuntime, engine: Engine) -> None:
    assert runtime.ledger.held() == {}
    assert all(c.removed for c in engine.created)
    # the whole host is free again: granted without waiting
    runtime.ledger.release(runtime.ledger.reserve(Need(cpus=2, memory=4 * 2**30), timeout=0, label="next"))


@pytest.mark.parametrize("sandbox", [False, True], ids=["tcp", "sandbox"])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_failure_at_each_step_of_start_releases_the_reservation(
    step: str,
    sandbox: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    make_runtime: Callable[..., docker_runtime.DockerRuntime],
) -> None:
    spec = spec_for(tmp_path)
    runtime = make_runtime(spec, sandbox=sandbox)
    sockets = set(Path(docker_runtime.tempfile.gettempdir()).glob("vdbench-sock-*"))
    STEPS[step](monkeypatch)
    with pytest.raises(StartupError) as info:
        runtime.start(spec)
    assert "leaky" in str(info.value)
    assert engine.created or step in BEFORE_CREATE, f"{step}: failed before that step ({info.value})"
    assert_nothing_held(runtime, engine)
    assert set(Path(docker_runtime.tempfile.gettempdir()).glob("vdbench-sock-*")) <= sockets


def test_an_interrupt_while_starting_releases_and_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, make_runtime: Callable[..., docker_runtime.DockerRuntime]
) -> None:
    spec = spec_for(tmp_path)
    runtime = make_runtime(spec)

    def interrupted(self: Any) -> Any:
        self._container = FakeWrapped()
        engine.created.append(self._container)
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(docker_runtime.DockerContainer, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runtime.start(spec)
    assert engine.created and engine.created[0].removed
    assert_nothing_held(runtime, engine)


def test_a_yaml_date_in_options_names_the_key_and_releases(
    tmp_path: Path,
    engine: Engine,
    make_runtime: Callable[..., docker_runtime.DockerRuntime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runtime's own guard, for a value validation let through (its JSON check switched off)."""
    import datetime

    import pytest_vdbench.manifest

    monkeypatch.setattr(pytest_vdbench.manifest, "non_json", lambda value, loc: iter(()))

    spec = spec_for(tmp_path, options={"fault": "none", "window": {"since": datetime.date(2024, 1, 1)}})
    runtime = make_runtime(spec)
    with pytest.raises(StartupError, match=r"options\.window\.since: datetime\.date\(2024, 1, 1\) \(date\) cannot be sent"):
        runtime.start(spec)
    assert engine.created == []  # refused before any container exists
    assert_nothing_held(runtime, engine)


def test_a_started_model_holds_until_stopped(
    tmp_path: Path, engine: Engine, make_runtime: Callable[..., docker_runtime.DockerRuntime]
) -> None:
    """The control: without a failure the reservation is held, and released by stop()."""
    spec = spec_for(tmp_path)
    runtime = make_runtime(spec)
    instance = runtime.start(spec)
    assert [e["label"] for e in runtime.ledger.held().values()] == ["leaky"]
    with pytest.raises(ReservationTimeout, match=r"held: leaky \(pid \d+, 2 CPUs, 1\.0 GiB memory, for \d+s\)"):
        runtime.ledger.reserve(Need(cpus=1), timeout=0.05, label="second")
    instance.stop()
    assert_nothing_held(runtime, engine)


def test_waiting_for_resources_is_bounded_and_names_the_holder(
    tmp_path: Path, engine: Engine, make_runtime: Callable[..., docker_runtime.DockerRuntime]
) -> None:
    spec = spec_for(tmp_path)
    runtime = make_runtime(spec)
    holder = runtime.ledger.reserve(Need(cpus=2), timeout=0, label="other-model")
    with pytest.raises(StartupError, match=r"leaky: .*within 0\.05s .*held: other-model \(pid \d+, 2 CPUs"):
        runtime.start(spec)
    assert engine.created == []
    runtime.ledger.release(holder)


class _EmptiedCgroup:
    """A container's cgroup once its processes are gone (what the kernel shows right after the kill)."""

    def read(self) -> None:
        return None

    def emptied(self) -> bool:
        return True


@pytest.mark.parametrize("cgroup", [True, False], ids=["processes-gone", "no-cgroup-files"])
def test_stop_gives_back_once_the_processes_are_gone_and_close_waits_for_the_removal(
    cgroup: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    make_runtime: Callable[..., docker_runtime.DockerRuntime],
) -> None:
    """The engine's removal (mostly taking the container's network down) need not hold the next model's CPUs."""
    if cgroup:
        monkeypatch.setattr(docker_runtime, "find_cgroup", lambda cid: _EmptiedCgroup())
    teardown = threading.Event()
    slow_remove = FakeWrapped.remove

    def remove(self: FakeWrapped, force: bool = False, v: bool = False) -> None:
        teardown.wait(5)
        slow_remove(self, force=force, v=v)

    monkeypatch.setattr(FakeWrapped, "remove", remove)
    spec = spec_for(tmp_path)
    runtime = make_runtime(spec)
    instance = runtime.start(spec)
    if cgroup:
        instance.stop()  # returns while the engine is still removing
        assert runtime.ledger.held() == {} and not engine.created[0].removed
        assert not instance.removed(timeout=0.05)
        teardown.set()
        runtime.close()  # waits for every removal this runtime began
        assert engine.created[0].removed and instance.removed(timeout=0)
    else:  # where the cgroup cannot be read, nothing says the processes are gone: hold until removed
        threading.Timer(0.3, teardown.set).start()
        instance.stop()
        assert engine.created[0].removed and runtime.ledger.held() == {}
    assert_nothing_held(runtime, engine)
