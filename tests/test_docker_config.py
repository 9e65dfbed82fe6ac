"""How the docker runtime configures a container, checked without an engine (no container starts)."""

from __future__ import annotations

import calendar
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import toy_manifest
from pytest_vdbench.manifest import ModelSpec, load_manifest
from pytest_vdbench.protocols import NATIVE, ready_probe
from pytest_vdbench.runtime.docker import DockerInstance, LogCounter, remove_socket_dir, stamped_size

pytest.importorskip("testcontainers")


def spec(tmp_path: Path, **overrides: Any) -> ModelSpec:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(toy_manifest("cfgtoy", **overrides)))
    (only,) = load_manifest(path, tmp_path)
    return only


NATIVE_KW: dict[str, Any] = {"protocol": NATIVE, "ready_probe": ready_probe}


def run_kwargs(instance: DockerInstance) -> dict[str, Any]:
    return dict(instance.container._kwargs)


def test_gpu_request_keeps_the_limits_labels_and_hardening(tmp_path: Path) -> None:
    """Regression: testcontainers' with_kwargs() replaces earlier kwargs, which once dropped them all for GPU models."""
    s = spec(tmp_path, resources={"cpus": 2, "memory": "4g", "gpus": 1, "gpu_memory": "8g"}, requires={"gpu": True})
    kw = run_kwargs(DockerInstance(s, "img", "run1", gpu_uuids=("GPU-abc",), testrun="tr", **NATIVE_KW))
    assert kw["device_requests"][0]["DeviceIDs"] == ["GPU-abc"]
    assert kw["labels"] == {
        "org.vdbench.run": "run1",
        "org.vdbench.model": "cfgtoy",
        "org.vdbench.testrun": "tr",
        "org.vdbench.host": socket.gethostname(),  # the owner: vdbench clean removes it only once this pid is gone
        "org.vdbench.pid": str(os.getpid()),
        "org.vdbench.manifest": "m.yaml",
    }
    assert kw["mem_limit"] == kw["memswap_limit"] == 4 * 2**30 and kw["nano_cpus"] == 2_000_000_000
    assert kw["read_only"] is True and kw["cap_drop"] == ["ALL"] and kw["user"] == "10001:10001"


def test_sandbox_keeps_the_hardening_and_publishes_nothing(tmp_path: Path) -> None:
    s = spec(tmp_path, sandbox={"network": "none"})
    instance = DockerInstance(s, "img", "run1", **NATIVE_KW)
    try:
        kw = run_kwargs(instance)
        assert kw["network_mode"] == "none" and kw["read_only"] is True and kw["pids_limit"] == s.manifest.resources.pids
        assert not instance.container.ports
        assert instance.socket_dir is not None and instance.endpoint.unix_socket == str(instance.socket_dir / "adapter.sock")
        assert len(instance.endpoint.unix_socket) < 108  # AF_UNIX path limit
    finally:
        if instance.socket_dir is not None:
            remove_socket_dir(instance.socket_dir)


def test_every_container_gets_a_log_cap_and_a_file_limit(tmp_path: Path) -> None:
    kw = run_kwargs(DockerInstance(spec(tmp_path), "img", "run1", **NATIVE_KW))
    assert kw["log_config"]["Type"] == "json-file" and kw["log_config"]["Config"] == {"max-size": "10m", "max-file": "3"}
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in kw["ulimits"]] == [("nofile", 4096, 4096)]


def test_the_sandbox_socket_folder_is_a_tiny_tmpfs_for_the_container_user(tmp_path: Path) -> None:
    instance = DockerInstance(spec(tmp_path, sandbox={"network": "none"}), "img", "run1", **NATIVE_KW)
    assert instance.socket_dir is not None and instance.endpoint.socket_owner == 10001
    try:
        if os.geteuid() == 0:  # only root may mount; elsewhere the folder is locked after readiness alone
            assert os.path.ismount(instance.socket_dir)
            assert os.statvfs(instance.socket_dir).f_blocks * os.statvfs(instance.socket_dir).f_frsize <= 256 * 1024
    finally:
        remove_socket_dir(instance.socket_dir)
    assert not instance.socket_dir.exists()


def test_default_is_loopback_tcp(tmp_path: Path) -> None:
    instance = DockerInstance(spec(tmp_path), "img", "run1", **NATIVE_KW)
    assert "network_mode" not in run_kwargs(instance) and instance.socket_dir is None
    assert list(instance.container.ports.values()) == [("127.0.0.1", None)]


def line(size: int, when: float | None = None) -> bytes:
    """One chunk of the engine's log stream read with timestamps: ``<RFC 3339 nanoseconds>Z <output>``."""
    when = time.time() if when is None else when
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f"{when % 1:.9f}"[1:] + "Z "
    return stamp.encode() + b"x" * (size - 1) + b"\n"


def test_the_log_count_waits_for_a_lagging_stream_to_catch_up() -> None:
    # the engine's log stream delivering a chatty model's last call late: 40 chunks of 50 kB, 10 ms apart
    counter = LogCounter(quiet=0.5, bound=30.0)
    printed = time.time() - 1  # the model printed them a second ago; the stream is behind
    counter.add(line(50_000, printed))

    def deliver() -> None:
        for _ in range(39):
            time.sleep(0.01)
            counter.add(line(50_000, printed))

    late = threading.Thread(target=deliver)
    late.start()
    assert counter.settled() == 2_000_000  # a count read at once (the old way) said 50 kB: a chatty model passed
    late.join()
    quiet = LogCounter(quiet=0.2, bound=5.0)
    started = time.monotonic()
    assert quiet.settled() == 0 and time.monotonic() - started < 0.1  # nothing streaming: no wait
    endless = LogCounter(quiet=10.0, bound=0.3)
    endless.add(line(1, time.time() - 5))
    started = time.monotonic()
    assert endless.settled() == 1 and time.monotonic() - started < 2.0  # a stream that never catches up: bounded


def test_the_log_count_of_a_model_that_keeps_printing_returns_once_the_stream_caught_up() -> None:
    # a heartbeat every 20 ms, forever: waiting for quiet would cost the whole bound on every usage() call
    counter, stop = LogCounter(quiet=10.0, bound=30.0), threading.Event()
    counter.add(line(100, time.time() - 1))

    def heartbeat() -> None:
        while not stop.wait(0.02):
            counter.add(line(100))

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        started = time.monotonic()
        assert counter.settled() >= 200  # the old line and at least the first stamped after the ask
        assert time.monotonic() - started < 5.0
    finally:
        stop.set()
        beating.join()
    assert counter.bytes % 100 == 0  # the engine's timestamps are not counted as the model's output


def test_the_log_count_reads_the_lagging_tail_from_the_engine_without_waiting() -> None:
    # the stream has delivered 1 of a chatty model's 40 lines; the engine holds all 40 (and the
    # already counted one again: its since is inclusive). One read of the tail makes the count exact.
    printed = time.time() - 1
    lines = [line(50_000, printed + i / 1000) for i in range(40)]
    asked: list[float | None] = []

    def fetch(since: float | None) -> bytes:
        asked.append(since)
        return b"".join(lines)  # an engine answering more than asked: what was counted is not counted twice

    counter = LogCounter(quiet=10.0, bound=30.0, fetch=fetch)
    counter.add(lines[0])
    started = time.monotonic()
    assert counter.settled() == 2_000_000
    assert time.monotonic() - started < 1.0  # no quiet wait (the old count waited 10 s here)
    assert asked[0] is not None and abs(asked[0] - printed) < 0.001
    assert counter.bytes == 50_000  # the stream's own count is untouched: it delivers the rest itself
    nothing = LogCounter(fetch=lambda since: b"")
    assert nothing.settled() == 0
    fresh = LogCounter(fetch=lambda since: line(7) if since is None else b"")
    assert fresh.settled() == 7  # nothing streamed yet: the whole log is asked for


def test_the_log_count_waits_for_the_stream_when_the_engine_does_not_answer() -> None:
    def gone(since: float | None) -> bytes:
        raise RuntimeError("404 Client Error: No such container")

    counter = LogCounter(quiet=0.3, bound=5.0, fetch=gone)
    counter.add(line(100, time.time() - 1))
    started = time.monotonic()
    assert counter.settled() == 100
    assert 0.2 < time.monotonic() - started < 3.0  # the quiet wait, as without an engine to ask


def test_log_stamps_are_read_to_the_nanosecond_whatever_their_length() -> None:
    # the engine trims trailing zeros (RFC 3339 nano): .5 and .500000001 are 1 ns apart, not equal
    chunk = b"2026-12-04T20:07:05.5Z aa\n2026-12-04T20:07:05.500000001Z bbb\n2026-12-04T20:07:06Z c\n"
    size, newest = stamped_size(chunk, 0)
    assert size == len(b"aa\nbbb\nc\n")
    half = (calendar.timegm((2026, 12, 4, 20, 7, 5, 0, 0, 0)) * 10**9) + 500_000_000
    assert stamped_size(chunk, half) == (len(b"bbb\nc\n"), newest)
    assert stamped_size(chunk, half + 1)[0] == len(b"c\n")
    assert newest == half + 500_000_000
    counter = LogCounter()
    counter.add(b"left of a split frame\n" + chunk)
    assert counter.bytes == len(b"left of a split frame\naa\nbbb\nc\n")  # bytes before a stamp are output too
