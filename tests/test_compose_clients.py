"""`vdbench compose` output read by real clients: the Compose Specification's schema and Debian's
docker-compose 1.29 (Compose v1), which `config`s it and brings one exported service up healthy."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT, docker_or_skip
from pytest_vdbench.tools.cli import main

#: schema/compose-spec.json of github.com/compose-spec/compose-spec (Apache-2.0), commit 170098ba
COMPOSE_SPEC = Path(__file__).parent / "data" / "compose-spec.json"


def export(out: Path, *args: str) -> dict[str, Any]:
    argv = ["compose", "--suite", str(ROOT / "model_suites"), "--root", str(ROOT), "-o", str(out), "--no-stage-sdk", *args]
    assert main(argv) == 0
    doc: dict[str, Any] = yaml.safe_load(out.read_text())
    return doc


def test_the_compose_specification_schema_accepts_it(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[dev]'")
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SPEC.read_text()))
    doc = export(tmp_path / "docker-compose.yml")
    assert len(doc["services"]) >= 10 and "name" not in doc
    assert [e.message for e in validator.iter_errors(doc)] == []
    doc["services"]["refvideo"]["ports"] = [{"target": 8080, "host_address": "127.0.0.1"}]  # not a Compose key
    assert any("host_address" in e.message for e in validator.iter_errors(doc))


def _compose_v1() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose (Compose v1) is missing: scripts/start-docker.sh installs Debian's package")
    return exe


@pytest.mark.docker
def test_docker_compose_v1_reads_every_service(tmp_path: Path) -> None:
    export(tmp_path / "docker-compose.yml")
    done = subprocess.run(
        [_compose_v1(), "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health_events(project: str) -> subprocess.Popen[str]:
    """The engine's health_status events of the compose project's containers, one status a line."""
    filters = ["--filter", f"label=com.docker.compose.project={project}", "--filter", "event=health_status"]
    return subprocess.Popen(
        ["docker", "events", *filters, "--format", "{{.Status}}"],
        stdout=subprocess.PIPE,
        text=True,
    )


def _first_verdict(events: subprocess.Popen[str], timeout: float) -> str:
    """``healthy`` or ``unhealthy`` (the first event saying so), or ``timeout``."""
    verdict: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert events.stdout is not None
        for line in events.stdout:
            if line.strip().endswith(("healthy", "unhealthy")):
                verdict.put(line.strip().rsplit(" ", 1)[-1])
                return

    threading.Thread(target=read, daemon=True).start()
    try:
        return verdict.get(timeout=timeout)
    except queue.Empty:
        return "timeout"


@pytest.mark.docker
@pytest.mark.slow
def test_docker_compose_v1_brings_refvideo_up_healthy_and_down(tmp_path: Path) -> None:
    """Build and start the exported refvideo service with Compose v1, wait for its readiness
    healthcheck to say healthy, answer on the published loopback port, then take it all down."""
    docker_or_skip()
    exe = _compose_v1()
    project = tmp_path / "p"
    shutil.copytree(ROOT / "containers" / "refvideo", project / "containers" / "refvideo")
    shutil.copy(ROOT / "model_suites" / "video" / "refvideo.yaml", project / "refvideo.yaml")
    port = _free_port()
    out = project / "deploy" / "docker-compose.yml"
    argv = [
        "compose",
        "--suite",
        str(project / "refvideo.yaml"),
        "--root",
        str(project),
        "-o",
        str(out),
        "--base-port",
        str(port),
    ]
    assert main(argv) == 0  # stages the SDK into the copied context
    doc = yaml.safe_load(out.read_text())
    image = f"vdbench-test/refvideo:{uuid.uuid4().hex[:10]}"  # this test's own image, removed at the end
    doc["services"]["refvideo"]["image"] = image
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    name = f"vdbench-compose-{uuid.uuid4().hex[:8]}"  # the compose project: only its containers are touched
    cmd = [exe, "-p", name, "-f", str(out)]
    events = _health_events(name)  # listening before `up`: the healthy event cannot be missed
    try:
        up = subprocess.run([*cmd, "up", "-d", "--build", "refvideo"], capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        container = subprocess.run([*cmd, "ps", "-q", "refvideo"], capture_output=True, text=True, timeout=60).stdout.strip()
        assert container, "docker-compose started no container"
        status = _first_verdict(events, timeout=150)  # start_period is the manifest's startup (60 s), then 3 x 5 s
        logs = subprocess.run([*cmd, "logs", "--tail", "50"], capture_output=True, text=True, timeout=60).stdout
        assert status == "healthy", f"health {status!r}; logs:\n{logs}"
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=10) as answer:
            assert answer.status == 200
        inspect = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=30).stdout)[
            0
        ]
        assert inspect["Config"]["User"] == "10001:10001" and inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    finally:
        events.terminate()
        events.wait(timeout=30)
        if events.stdout is not None:
            events.stdout.close()
        down = subprocess.run([*cmd, "down", "-v", "--remove-orphans"], capture_output=True, text=True, timeout=120)
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=120)
    assert down.returncode == 0, down.stderr
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert left.stdout.strip() == ""
