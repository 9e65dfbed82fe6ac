"""Hostile neighbours in the docker runtime (#17): log cap, file limit, log budget, socket folder, build network.

Marked ``docker``: they skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import ADAPTERS, containers, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _engine() -> None:
    docker_or_skip()


def run_docker(pytester: pytest.Pytester, suite: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker", "-p", "no:cacheprovider", "-rfEs", *extra,
        timeout=600,
    )  # fmt: skip


LIMITS_INSPECT = """
def test_limits(vdbench_run, vdbench_endpoint):
    host = vdbench_run.instance.container.get_wrapped_container().attrs["HostConfig"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, host["LogConfig"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}], host["Ulimits"]
"""


def test_every_container_has_a_log_cap_and_a_file_limit(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    pytester.makepyfile(test_inspect=LIMITS_INSPECT)
    result = run_docker(pytester, write_suite(toy_manifest("captoy")), "test_inspect.py", "-k", "test_limits")
    result.assert_outcomes(passed=1)
    assert containers("captoy") == []


def test_a_model_that_logs_too_much_fails_test_budget_with_the_figure(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    result = run_docker(pytester, write_suite(toy_manifest("chattytoy", fault="chatty")))
    failed = {line.split(" ")[1].split("::")[-1].split("[")[0] for line in result.outlines if line.startswith("FAILED ")}
    assert failed == {"test_budget"}, result.stdout.str()
    # 2 MiB a call, every call counted (audits too) and the engine's lagging log stream waited for:
    # it said 3.0 MiB (rounds only as the divisor) and, on a busy host, under 1 MiB (read before it caught up);
    # measured since: 1.6-2.2 MiB (the engine still drops some lines of a model this chatty)
    result.stdout.fnmatch_lines(["*the model wrote [123].* MiB of logs per call (*over expect.budgets.log_bytes 1.0 MiB*"])
    assert containers("chattytoy") == []


SOCKET_INSPECT = """
import os, stat

def test_socket_folder(vdbench_run, vdbench_endpoint):
    container = vdbench_run.instance.container.get_wrapped_container()
    folder = os.path.dirname(vdbench_endpoint.unix_socket)
    assert vdbench_endpoint.socket_owner == 10001
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o711  # locked once the model was ready
    if os.geteuid() == 0:
        assert os.path.ismount(folder)  # a 256 KiB tmpfs, not the host's disk
    for cmd in (
        "head -c 1048576 /dev/zero > /run/vdbench/junk",
        "ln -sf /var/run/docker.sock /run/vdbench/adapter.sock",
        "rm /run/vdbench/adapter.sock",
    ):
        code, out = container.exec_run(["sh", "-c", cmd], user="10001")
        assert code != 0, (cmd, out)
    assert sorted(os.listdir(folder)) == ["adapter.sock"]
    assert stat.S_ISSOCK(os.lstat(vdbench_endpoint.unix_socket).st_mode)
"""


def test_the_sandbox_socket_folder_cannot_be_filled_or_redirected(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    suite = write_suite(toy_manifest("socktoy", sandbox={"network": "none"}))
    pytester.makepyfile(test_inspect=SOCKET_INSPECT)
    result = run_docker(pytester, suite, "test_inspect.py", "-k", "test_socket_folder")
    result.assert_outcomes(passed=1)
    assert containers("socktoy") == []


ONLY_LOOPBACK = (
    "RUN python3 -c \"import sys; names = {l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]}; "
    "sys.exit(0 if names == {'lo'} else 'build network: ' + str(sorted(names)))\"\n"
)


@pytest.mark.parametrize(("build_network", "outcome"), [("none", "passed"), ("default", "failed")])
def test_build_network_none_builds_without_a_network(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], build_network: str, outcome: str
) -> None:
    context = pytester.mkdir(f"ctx-{build_network}")
    (context / "toy.py").write_text((ADAPTERS / "toy.py").read_text())
    # the ENV keeps the two builds apart in Docker's layer cache (the RUN line is the same)
    dockerfile = f"ARG BASE=vdbench/base:bookworm\nFROM ${{BASE}}\nENV BUILT_WITH={build_network}\n{ONLY_LOOPBACK}"
    (context / "Dockerfile").write_text(dockerfile)
    doc = toy_manifest(f"bnet{build_network}", image={"context": str(context), "base": "bookworm"})
    doc["sandbox"] = {"build_network": build_network}
    result = run_docker(pytester, write_suite(doc), "-k", "test_build")
    result.assert_outcomes(**{outcome: 1}, deselected=6)
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*build network: *eth0*"])
    assert os.environ.get("VDBENCH_REQUIRE_DOCKER") != "1" or containers(f"bnet{build_network}") == []
