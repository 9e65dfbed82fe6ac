"""The docker runtime for real: content-addressed builds, limits, hardening, OOM, startup timeout, cleanup.

Marked ``docker``: they skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1), where a
missing engine is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import containers, default_sigint, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _engine() -> None:
    docker_or_skip()


def run_docker(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "docker",
        "-p",
        "no:cacheprovider",
        "-rfEs",
        *extra,
        timeout=600,
    )


def test_healthy_toy_in_a_container_then_nothing_is_rebuilt(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("dockertoy"))
    first = run_docker(pytester, suite, "--vdbench-report", "r1")
    first.assert_outcomes(passed=7)
    second = run_docker(pytester, suite, "--vdbench-report", "r2")
    second.assert_outcomes(passed=7)
    row1 = json.loads((pytester.path / "r1" / "report.json").read_text())["models"][0]
    row2 = json.loads((pytester.path / "r2" / "report.json").read_text())["models"][0]
    assert row2["build_cached"] is True and row2["image"] == row1["image"]
    assert row1["image"].startswith("vdbench/dockertoy:")
    assert row1["peak_memory_bytes"] and row1["startup_seconds"] > 0
    assert containers("dockertoy") == []


def test_container_is_hardened_and_limited(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("hardtoy", resources={"cpus": 0.5, "memory": "300m", "pids": 64}))
    pytester.makepyfile(
        test_inspect="""
        def test_host_config(vdbench_run, vdbench_endpoint):
            attrs = vdbench_run.instance.container.get_wrapped_container().attrs
            host = attrs["HostConfig"]
            assert attrs["Config"]["User"] == "10001:10001"
            assert host["CapDrop"] == ["ALL"]
            assert host["SecurityOpt"] == ["no-new-privileges"]
            assert host["ReadonlyRootfs"] is True
            assert host["Memory"] == 300 * 2**20 and host["MemorySwap"] == 300 * 2**20
            assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 64
            bindings = host["PortBindings"]["8080/tcp"]
            assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
            assert vdbench_endpoint.host == "127.0.0.1"
            assert attrs["Config"]["Labels"]["org.vdbench.model"] == "hardtoy"
        """
    )
    result = run_docker(pytester, suite, "test_inspect.py", "-k", "test_host_config")
    result.assert_outcomes(passed=1)
    assert containers("hardtoy") == []


SANDBOX_INSPECT = """
import os

def test_sandboxed(vdbench_run, vdbench_endpoint):
    container = vdbench_run.instance.container.get_wrapped_container()
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert not host.get("PortBindings")
    assert container.attrs["NetworkSettings"]["Ports"] in ({}, None)
    assert vdbench_endpoint.unix_socket and os.path.exists(vdbench_endpoint.unix_socket)
    code, out = container.exec_run(["cat", "/proc/net/dev"])
    interfaces = {line.split(":")[0].strip() for line in out.decode().splitlines()[2:]}
    assert code == 0 and interfaces == {"lo"}, interfaces
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    with open(os.environ["SOCKET_LOG"], "w") as fh:
        fh.write(os.path.dirname(vdbench_endpoint.unix_socket))
"""


def test_network_none_sandbox_serves_over_a_unix_socket(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """sandbox: {network: none}: the whole suite passes over the socket, and the container has no network."""
    suite = write_suite(toy_manifest("sandtoy", sandbox={"network": "none"}))
    pytester.makepyfile(test_inspect=SANDBOX_INSPECT)
    log = pytester.path / "socket-dir.txt"
    monkeypatch.setenv("SOCKET_LOG", str(log))
    result = run_docker(pytester, suite, "--vdbench-report", "r")
    result.assert_outcomes(passed=7)  # every generated test, over HTTP on the Unix socket
    result = run_docker(pytester, suite, "test_inspect.py", "-k", "test_sandboxed")
    result.assert_outcomes(passed=1)
    assert not Path(log.read_text()).exists()  # the socket's directory went with the container
    assert containers("sandtoy") == []


def test_sandbox_flag_sandboxes_every_model(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(toy_manifest("flagtoy"))
    pytester.makepyfile(test_inspect=SANDBOX_INSPECT)
    monkeypatch.setenv("SOCKET_LOG", str(pytester.path / "socket-dir.txt"))
    result = run_docker(pytester, suite, "test_inspect.py", "-k", "test_sandboxed")
    result.assert_outcomes(failed=1)  # not sandboxed without the flag: the inspection can fail
    result.stdout.fnmatch_lines(["*NetworkMode*"])
    result = run_docker(pytester, suite, "test_inspect.py", "-k", "test_sandboxed", "--vdbench-sandbox")
    result.assert_outcomes(passed=1)
    assert containers("flagtoy") == []


def test_oom_fails_the_resource_test_with_the_limit(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = toy_manifest("oomtoy", fault="memory", resources={"cpus": 1, "memory": "128m"})
    doc["expect"]["budgets"] = {}
    result = run_docker(pytester, write_suite(doc))
    result.stdout.fnmatch_lines(["*OOM-killed at limit 128.0 MiB (resources.memory)*"])
    failed = {line.split(" ")[1].split("::")[-1].split("[")[0] for line in result.outlines if line.startswith("FAILED ")}
    assert failed == {"test_budget"}
    assert containers("oomtoy") == []


def test_never_ready_fails_within_startup_timeout_with_logs(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("slowtoy", fault="never_ready", timeouts={"startup": "4s", "generate": "10s"}))
    start = time.monotonic()
    result = run_docker(pytester, suite)
    assert time.monotonic() - start < 120
    result.stdout.fnmatch_lines(
        ["*not ready within the startup timeout of 4s*", "*last container/process logs*", "*serving toy:ToyVideo*"]
    )
    result.assert_outcomes(passed=1, failed=1, skipped=5)  # test_build passes; dependents skip
    assert containers("slowtoy") == []


def test_build_failure_fails_test_build_with_the_log(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    ctx = pytester.path / "badctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo about-to-fail && exit 7\n")
    doc = toy_manifest("badbuild")
    doc["image"] = {"context": str(ctx), "base": "bookworm"}
    result = run_docker(pytester, write_suite(doc))
    result.assert_outcomes(failed=1, skipped=6)
    result.stdout.fnmatch_lines(["*test_build*", "*building the image for 'badbuild' failed*", "*about-to-fail*"])
    assert containers("badbuild") == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_container(pytester: pytest.Pytester, write_suite: Callable[..., Path], sig: int) -> None:
    """Interrupted mid-generation: no container remains and the report keeps the model that finished."""
    suite = write_suite(
        toy_manifest("aadone"),  # sorted first: completes before the interruption
        toy_manifest("inttoy", options={"delay": 60.0}, timeouts={"startup": "60s", "generate": "120s"}),
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vdbench",
            "--vdbench-suite",
            str(suite),
            "--vdbench-runtime",
            "docker",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",  # this environment's plugin imports hypothesis in the summary: seconds on a busy box
            "--vdbench-report=r",
        ],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        generating = _wait_for_log("inttoy", "toy: generating", proc, timeout=300)  # an event, not a guess
        proc.send_signal(sig)
        signalled = time.monotonic()
        out, _ = proc.communicate(timeout=120)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reap it and close its pipe: no unclosed Popen/FileIO for a later test's GC
    # the toy sleeps 60 s in generate: a harness that waited for the generation would end after `remaining`
    remaining = 60.0 - (signalled - generating)
    print(f"pytest ended {took:.2f} s after the signal; the generation had {remaining:.1f} s to go")
    assert took < min(50.0, remaining - 5.0), f"pytest ended {took:.1f} s after the signal, as if it waited for the generation"
    assert "KeyboardInterrupt" in out
    assert containers("inttoy") == [] and containers("aadone") == []
    doc = json.loads((pytester.path / "r" / "report.json").read_text())
    rows = {r["id"]: r for r in doc["models"]}
    assert rows["aadone"]["status"] == "ok" and rows["aadone"]["generate_seconds_median"] is not None
    # the interrupted model has its row, with what was measured before the signal, and says it did not finish
    assert rows["inttoy"]["status"] == "interrupted" and rows["inttoy"]["startup_seconds"] is not None
    assert doc["run"]["status"] == "interrupted" and doc["run"]["unfinished_models"] == ["inttoy"]


def test_vdbench_clean_removes_leftovers() -> None:
    cid = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--label",
            "org.vdbench.run=leftover",
            "--label",
            "org.vdbench.model=leaktoy",
            "vdbench/base:bookworm",
            "sleep",
            "300",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert containers("leaktoy") == [cid[:12]]
    out = subprocess.run(
        [sys.executable, "-m", "pytest_vdbench.tools.cli", "clean", "--run", "leftover"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "removed 1 vdbench container(s)" in out.stdout
    assert containers("leaktoy") == []


def test_killed_xdist_worker_leaves_no_container(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest("killtoy"))
    pytester.makepyfile(
        test_kill="""
        import os, signal

        def test_worker_dies_mid_run(vdbench_run, vdbench_endpoint):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup can run in this process
        """
    )
    result = run_docker(
        pytester,
        suite,
        "test_kill.py",
        "-k",
        "test_worker_dies",
        "-n",
        "1",
        "--max-worker-restart",
        "0",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
    )
    result.stdout.fnmatch_lines(
        ["*worker 'gw0' crashed while running*", "*removed 1 container(s) left by crashed xdist worker(s)*"]
    )
    assert containers("killtoy") == []


def test_required_env_reaches_the_container(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDBENCH_TEST_API_KEY", "s3cret")
    suite = write_suite(toy_manifest("envtoy", requires={"env": ["VDBENCH_TEST_API_KEY"]}))
    pytester.makepyfile(
        test_env="""
        def test_env(vdbench_run, vdbench_endpoint):
            env = vdbench_run.instance.container.get_wrapped_container().attrs["Config"]["Env"]
            assert "VDBENCH_TEST_API_KEY=s3cret" in env
        """
    )
    run_docker(pytester, suite, "test_env.py", "-k", "test_env").assert_outcomes(passed=1)


def _wait_for_log(model: str, marker: str, proc: subprocess.Popen[str], *, timeout: float) -> float:
    """Wait until the model's container has logged ``marker``; returns when (monotonic). Fails if pytest exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        for cid in containers(model):
            logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, check=False)
            if marker in logs.stdout + logs.stderr:
                return time.monotonic()
        time.sleep(0.1)  # the poll interval of the wait, not a guess at how long anything takes
    raise AssertionError(f"{model}'s container never logged {marker!r} within {timeout:g} s")
