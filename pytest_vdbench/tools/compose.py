"""``vdbench compose``: a docker-compose.yml with one service per model variant, as the runtime runs it.

Each service gets what ``runtime/docker.py`` gives a container: the build (context, Dockerfile,
``BASE`` and the manifest's build args), the command, environment, CPU/memory/shm/pids limits,
ports published on 127.0.0.1 only, GPU reservations, the read-only Hugging Face cache for models
that need weights, the hardening (non-root user, no capabilities, no-new-privileges, read-only root
filesystem with a tmpfs ``/tmp``) and a healthcheck on the adapter's readiness endpoint.

The image tag is ``vdbench/<model>:compose``, not the content-addressed tag of ``images.py``: that
hash covers the base image's *id*, which only a Docker engine can tell.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.protocols import PROTOCOLS
from pytest_vdbench.runtime.images import SDK_DIR, image_repo, sdk_files

__all__ = ["COMPOSE_TAG", "HARDENING", "compose_document", "service_for", "stage_sdk"]

COMPOSE_TAG = "compose"
#: the container hardening of runtime/docker.py (DockerInstance), in compose's keys
HARDENING: dict[str, Any] = {
    "user": "10001:10001",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": ["/tmp:size=1g"],
}
SOCKET_DIR = "/run/vdbench"


def _relative(path: Path, start: Path) -> str:
    rel = Path(os.path.relpath(path, start)).as_posix()
    return rel if rel.startswith(".") else f"./{rel}"


def _healthcheck(spec: ModelSpec, port: int, sandbox: bool) -> dict[str, Any]:
    m = spec.manifest
    protocol = PROTOCOLS.get(m.protocol)
    ready = protocol.ready_path
    if sandbox:
        probe = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(4); "
            f"s.connect('{SOCKET_DIR}/adapter.sock'); s.sendall(b'GET {ready} HTTP/1.0\\r\\n\\r\\n'); "
            "sys.exit(0 if b' 200 ' in s.recv(64) else 1)"
        )
    elif protocol.ready_json is not None:  # e.g. Cog answers 200 while STARTING too: its JSON status says ready
        key, ready_values = protocol.ready_json
        probe = (
            "import json,sys,urllib.request; "
            f"r=json.load(urllib.request.urlopen('http://127.0.0.1:{port}{ready}', timeout=4)); "
            f"sys.exit(0 if r.get({key!r}) in {ready_values!r} else 1)"
        )
    else:  # urlopen raises on 503 (loading) and 500 (load() failed)
        probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{ready}', timeout=4)"
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "5s",
        "timeout": "5s",
        "retries": 3,
        "start_period": f"{m.timeouts.startup:g}s",
    }


def service_for(spec: ModelSpec, out_dir: Path, host_port: int | None, *, sandbox: bool = False) -> dict[str, Any]:
    """The compose service of one (model, variant); paths are relative to ``out_dir``."""
    from pytest_vdbench.runtime.bases import base_tag

    m = spec.manifest
    r = m.resources
    port = PROTOCOLS.get(m.protocol).port(m)
    sandbox = sandbox or m.sandbox.network == "none"
    listen = ["--unix-socket", f"{SOCKET_DIR}/adapter.sock"] if sandbox else ["--host", "0.0.0.0", "--port", str(port)]
    env: dict[str, str | None] = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "VDBENCH_OPTIONS": json.dumps(m.options)}
    env.update({**PROTOCOLS.get(m.protocol).server_env(m, port), **m.env})
    env.update({name: None for name in m.requires.env})  # no value: taken from the shell running compose
    service: dict[str, Any] = {
        "build": {
            "context": _relative(spec.context_dir, out_dir),
            "dockerfile": m.image.dockerfile,
            "args": {**m.image.args, "BASE": base_tag(m.image.base)},
        },
        "image": f"vdbench/{image_repo(spec.name)}:{COMPOSE_TAG}",
    }
    command = PROTOCOLS.get(m.protocol).command(m, listen)
    if command is not None:
        service["command"] = command
    service["environment"] = env
    service["labels"] = {"org.vdbench.model": spec.id, "org.vdbench.manifest": spec.path.name}
    service.update(
        {
            "cpus": r.cpus,
            "mem_limit": r.memory,
            "memswap_limit": r.memory,  # no swap: exceeding the limit is an OOM kill, as under vdbench
            "shm_size": r.shm,
            "pids_limit": r.pids,
            **json.loads(json.dumps(HARDENING)),
        }
    )
    volumes: list[str] = []
    if sandbox:
        service["network_mode"] = "none"
        volumes.append(f"./vdbench-sockets/{spec.id}:{SOCKET_DIR}")
    else:
        published = {"target": port, "host_ip": "127.0.0.1", "protocol": "tcp"}
        if host_port is not None:
            published["published"] = str(host_port)
        service["ports"] = [published]
    if m.requires.weights:
        volumes.append("${HF_HUB_CACHE:-${HOME}/.cache/huggingface/hub}:/hf-cache:ro")
        env.update({"HF_HUB_CACHE": "/hf-cache", "HF_HUB_OFFLINE": "1"})
    if volumes:
        service["volumes"] = volumes
    if r.gpus:
        device = {"driver": "nvidia", "count": r.gpus, "capabilities": ["gpu"]}
        service["deploy"] = {"resources": {"reservations": {"devices": [device]}}}
    service["healthcheck"] = _healthcheck(spec, port, sandbox)
    return service


def compose_document(specs: Sequence[ModelSpec], out_dir: Path, *, base_port: int | None = 18080) -> dict[str, Any]:
    """The whole docker-compose document: one service per spec, host ports from ``base_port`` up."""
    services: dict[str, Any] = {}
    next_port = base_port
    for spec in specs:
        sandboxed = spec.manifest.sandbox.network == "none"
        port = None if sandboxed else next_port
        services[spec.id] = service_for(spec, out_dir, port)
        if next_port is not None and not sandboxed:
            next_port += 1
    return {"name": "vdbench", "services": services}


def stage_sdk(context: Path) -> Path:
    """Copy the adapter SDK to ``<context>/.vdbench-sdk/`` (what the Dockerfiles COPY), git-ignored."""
    target = context / SDK_DIR
    if target.exists():
        shutil.rmtree(target)
    for rel, source in sdk_files():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    (target / ".gitignore").write_text("# staged by `vdbench compose`; vdbench's own builds add the SDK themselves\n*\n")
    return target
