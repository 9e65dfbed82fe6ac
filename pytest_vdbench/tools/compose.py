"""``vdbench compose``: a docker-compose.yml with one service per model variant, as the runtime runs it.

Each service renders the model's ``runtime/plan.py`` plan, as the Docker runtime does: the command,
environment, CPU/memory/shm/pids limits, ports published on 127.0.0.1 only, GPU reservations, the
read-only Hugging Face cache, the hardening and a healthcheck on the protocol's readiness path; plus
the build (context, Dockerfile, ``BASE`` and the manifest's build args). The document is read by
Debian's docker-compose 1.29 (Compose v1: no top-level ``name``, short-syntax ports) and by tools
following the Compose Specification.

The image tag is ``vdbench/<model>:compose``, not the content-addressed tag of ``images.py``: that
hash covers the base image's *id*, which only a Docker engine can tell.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.protocols import PROTOCOLS
from pytest_vdbench.runtime.images import SDK_DIR, image_repo, sdk_files
from pytest_vdbench.runtime.plan import ContainerPlan, container_plan, probe_script

__all__ = ["COMPOSE_TAG", "compose_document", "healthcheck", "render_service", "service_for", "stage_sdk"]

COMPOSE_TAG = "compose"
#: the shell running compose decides; no nested ${...}: Compose v1 cannot read it, and both expand "~"
HF_CACHE_SOURCE = "${HF_HUB_CACHE:-~/.cache/huggingface/hub}"


def _relative(path: Path, start: Path) -> str:
    rel = Path(os.path.relpath(path, start)).as_posix()
    return rel if rel.startswith(".") else f"./{rel}"


def healthcheck(plan: ContainerPlan) -> dict[str, Any]:
    """The plan's readiness probe as a compose healthcheck."""
    r = plan.readiness
    return {
        "test": ["CMD", "python", "-c", probe_script(r)],
        "interval": f"{r.interval:g}s",
        "timeout": f"{r.timeout:g}s",
        "retries": r.retries,
        "start_period": f"{r.start_period:g}s",
    }


def render_service(plan: ContainerPlan, host_port: int | None, socket_source: str) -> dict[str, Any]:
    """The plan as a compose service (without ``build``): Compose v1 (1.29) and Specification keys only."""
    lim, hard = plan.limits, plan.hardening
    env: dict[str, str | None] = {**plan.env_dict, **{name: None for name in plan.env_from_host}}  # None: from the shell
    service: dict[str, Any] = {"image": plan.image}
    if plan.command is not None:
        service["command"] = list(plan.command)
    service["environment"] = env
    service["labels"] = plan.labels_dict
    service.update(
        {
            "cpus": lim.cpus,
            "mem_limit": lim.memory,
            "memswap_limit": lim.memswap,
            "shm_size": lim.shm,
            "pids_limit": lim.pids,
            "user": hard.user_spec,
            "cap_drop": list(hard.cap_drop),
            "security_opt": list(hard.security_opt),
            "read_only": hard.read_only_root,
            "tmpfs": [f"{path}:{opts}" if opts else path for path, opts in hard.tmpfs],
        }
    )
    volumes = []
    for mount in plan.mounts:
        source = mount.source or (socket_source if mount.name == "sockets" else HF_CACHE_SOURCE)
        volumes.append(f"{source}:{mount.target}" + (":ro" if mount.read_only else ""))
    if plan.network == "none":
        service["network_mode"] = "none"
    else:  # short syntax: Compose v1 refuses the long form's host_ip
        service["ports"] = [f"127.0.0.1:{host_port if host_port is not None else ''}:{plan.port}"]
    if volumes:
        service["volumes"] = volumes
    if lim.gpus:
        device = {"driver": "nvidia", "count": lim.gpus, "capabilities": ["gpu"]}
        service["deploy"] = {"resources": {"reservations": {"devices": [device]}}}
    service["healthcheck"] = healthcheck(plan)
    return service


def service_for(spec: ModelSpec, out_dir: Path, host_port: int | None, *, sandbox: bool = False) -> dict[str, Any]:
    """The compose service of one (model, variant); paths are relative to ``out_dir``."""
    from pytest_vdbench.runtime.bases import base_tag
    from pytest_vdbench.runtime.cogyaml import image_source

    m = spec.manifest
    image = f"vdbench/{image_repo(spec.name)}:{COMPOSE_TAG}"
    plan = container_plan(spec, image, protocol=PROTOCOLS.get(m.protocol), sandbox=sandbox)
    base, dockerfile, _generated, _inputs = image_source(spec)  # a cog.yaml model's Dockerfile: staged with the SDK
    build = {
        "context": _relative(spec.context_dir, out_dir),
        "dockerfile": dockerfile,
        "args": {**m.image.args, "BASE": base_tag(base)},
    }
    return {"build": build, **render_service(plan, host_port, f"./vdbench-sockets/{spec.id}")}


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
    # no top-level ``name:``: Compose v1 refuses it (the project name is the folder's, or ``-p``)
    return {"services": services}


def stage_sdk(context: Path, generated: Mapping[str, bytes] | None = None) -> Path:
    """Copy the adapter SDK to ``<context>/.vdbench-sdk/`` (what the Dockerfiles COPY), git-ignored,
    with the ``generated`` files (a cog.yaml model's Dockerfile, paths under ``.vdbench-sdk/``)."""
    target = context / SDK_DIR
    if target.exists():
        shutil.rmtree(target)
    for rel, source in sdk_files():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    for rel, data in (generated or {}).items():
        dest = context / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    (target / ".gitignore").write_text("# staged by `vdbench compose`; vdbench's own builds add the SDK themselves\n*\n")
    return target
