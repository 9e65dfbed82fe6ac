"""``vdbench k8s``: each model variant's container plan as a Kubernetes Job + Service (on paper).

The Job runs the plan's container once (``restartPolicy: Never``, ``backoffLimit: 0``) under its
limits (``requests == limits``, ``nvidia.com/gpu``), its hardening as a ``securityContext``, a
readiness probe on the protocol's path, ``activeDeadlineSeconds`` from the plan's deadline and
``ttlSecondsAfterFinished``; GPU memory becomes a node-affinity term on a node label (NVIDIA GPU
Feature Discovery's ``nvidia.com/gpu.memory``, MiB, by default). The Service exposes the port in
the cluster. A sandboxed model (``network: none``) keeps TCP and gets a NetworkPolicy that denies
all egress. What Kubernetes has no per-pod key for (swap, pids) is written as an annotation.

The output is validated against Kubernetes' published schemas (``kubernetes-validate``); it is
not run against a live cluster here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec, parse_bytes
from pytest_vdbench.protocols import PROTOCOLS
from pytest_vdbench.runtime.images import image_repo
from pytest_vdbench.runtime.plan import LABEL_RUN, ContainerPlan, container_plan, probe_script

__all__ = ["DEFAULT_GPU_MEMORY_LABEL", "ENV_SECRET", "K8sOptions", "dns_name", "quantity", "render", "resources_for", "write_all"]

DEFAULT_GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # GPU Feature Discovery: memory per GPU in MiB
ENV_SECRET = "vdbench-env"  # requires.env values come from this Secret's keys
_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class K8sOptions:
    """How the export is targeted: run id, image registry prefix and tag, TTL, namespace, node label, cache path."""

    run: str = "manual"
    image_prefix: str = ""  # e.g. registry.example:5000/ (the cluster pulls from a registry)
    tag: str = "k8s"
    ttl: int = 3600  # ttlSecondsAfterFinished
    namespace: str | None = None
    gpu_memory_label: str = DEFAULT_GPU_MEMORY_LABEL
    hf_cache: str = "/var/cache/huggingface/hub"  # the nodes' Hugging Face cache (hostPath)


def dns_name(model: str) -> str:
    """A DNS-1035 label (Service names) from a model id: ``vdbench-`` + lower-case, dashes, <= 63."""
    name = _DNS.sub("-", f"vdbench-{model}".lower()).strip("-")
    return name[:63].rstrip("-")


def _label_value(value: str) -> str:
    return _LABEL_VALUE.sub("-", value)[:63].strip("-_.")


def quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity (``1Gi``, ``77Mi``, else the plain number)."""
    for suffix, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _tmpfs_limit(options: str) -> str | None:
    for part in options.split(","):
        if part.startswith("size="):
            return quantity(parse_bytes(part.removeprefix("size=")))
    return None


def _probe(plan: ContainerPlan) -> dict[str, Any]:
    r = plan.readiness
    probe: dict[str, Any]
    if r.statuses or r.unix_socket is not None:  # a 200 is not enough (Cog's JSON status): run the check inside
        probe = {"exec": {"command": ["python", "-c", probe_script(r)]}}
    else:
        probe = {"httpGet": {"path": r.path, "port": r.port}}
    return {
        **probe,
        "periodSeconds": max(1, math.ceil(r.interval)),
        "timeoutSeconds": max(1, math.ceil(r.timeout)),
        "failureThreshold": r.retries,
    }


def _env(plan: ContainerPlan) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plan.env]
    secret = [{"name": n, "valueFrom": {"secretKeyRef": {"name": ENV_SECRET, "key": n}}} for n in plan.env_from_host]
    return env + secret


def _volumes(plan: ContainerPlan, opts: K8sOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, container mounts): the tmpfs paths and /dev/shm as memory emptyDirs, the HF cache."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, (path, options) in enumerate(plan.hardening.tmpfs):
        limit = _tmpfs_limit(options)
        volumes.append({"name": f"tmpfs-{i}", "emptyDir": {"medium": "Memory", **({"sizeLimit": limit} if limit else {})}})
        mounts.append({"name": f"tmpfs-{i}", "mountPath": path})
    volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(plan.limits.shm)}})
    mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    for mount in plan.mounts:
        if mount.name == "hf-cache":
            volumes.append({"name": "hf-cache", "hostPath": {"path": mount.source or opts.hf_cache, "type": "Directory"}})
            mounts.append({"name": "hf-cache", "mountPath": mount.target, "readOnly": mount.read_only})
    return volumes, mounts


def _container(plan: ContainerPlan, opts: K8sOptions) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lim, hard = plan.limits, plan.hardening
    limits: dict[str, Any] = {"cpu": f"{int(lim.cpus * 1000)}m", "memory": quantity(lim.memory)}
    if lim.gpus:
        limits["nvidia.com/gpu"] = lim.gpus
    volumes, mounts = _volumes(plan, opts)
    container: dict[str, Any] = {"name": "model", "image": plan.image}
    if plan.command is not None:  # args, not command: like docker's CMD, the image's ENTRYPOINT stays
        container["args"] = list(plan.command)
    container.update(
        {
            "env": _env(plan),
            "ports": [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}],
            "resources": {"limits": limits, "requests": dict(limits)},  # requests == limits: Guaranteed QoS
            "securityContext": {
                "runAsUser": hard.user,
                "runAsGroup": hard.group,
                "runAsNonRoot": hard.user != 0,
                "allowPrivilegeEscalation": not hard.no_new_privileges,
                "readOnlyRootFilesystem": hard.read_only_root,
                "capabilities": {"drop": list(hard.cap_drop)},
            },
            "readinessProbe": _probe(plan),
            "volumeMounts": mounts,
        }
    )
    return container, volumes


def _affinity(plan: ContainerPlan, opts: K8sOptions) -> dict[str, Any] | None:
    if not plan.limits.gpus or not plan.limits.gpu_memory:
        return None
    mib = math.ceil(plan.limits.gpu_memory / (1 << 20))
    term = {"matchExpressions": [{"key": opts.gpu_memory_label, "operator": "Gt", "values": [str(mib - 1)]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _metadata(name: str, labels: dict[str, str], opts: K8sOptions, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels, **extra}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def render(plan: ContainerPlan, opts: K8sOptions) -> list[dict[str, Any]]:
    """The plan as Kubernetes resources: a Job, a Service and, for ``network: none``, a NetworkPolicy."""
    name = dns_name(plan.model)
    selector = {"app.kubernetes.io/name": "vdbench", "app.kubernetes.io/instance": name}
    labels = {**selector, **{k: _label_value(v) for k, v in plan.labels}}
    annotations = {"org.vdbench.memswap": str(plan.limits.memswap), "org.vdbench.pids-limit": str(plan.limits.pids)}
    container, volumes = _container(plan, opts)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": plan.hardening.user != 0, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    affinity = _affinity(plan, opts)
    if affinity is not None:
        pod["affinity"] = affinity
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(name, labels, opts, annotations=annotations),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": math.ceil(plan.timeouts.deadline),
            "ttlSecondsAfterFinished": opts.ttl,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, labels, opts),
        "spec": {"selector": selector, "ports": [{"name": "http", "port": plan.port, "targetPort": "http", "protocol": "TCP"}]},
    }
    docs: list[dict[str, Any]] = [job, service]
    if plan.network == "none":  # Kubernetes pods always have a network: deny all egress instead
        policy = {"podSelector": {"matchLabels": selector}, "policyTypes": ["Egress"], "egress": []}
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": _metadata(name, labels, opts),
                "spec": policy,
            }
        )
    return docs


def resources_for(spec: ModelSpec, opts: K8sOptions | None = None) -> list[dict[str, Any]]:
    """The Kubernetes resources of one (model, variant)."""
    opts = opts or K8sOptions()
    image = f"{opts.image_prefix}vdbench/{image_repo(spec.name)}:{opts.tag}"
    protocol = PROTOCOLS.get(spec.manifest.protocol)
    plan = container_plan(spec, image, protocol=protocol, unix_socket=False, labels={LABEL_RUN: opts.run})
    return render(plan, opts)


def write_all(specs: list[ModelSpec], out_dir: Path, opts: K8sOptions) -> list[Path]:
    """One multi-document YAML file per (model, variant) under ``out_dir``; returns the paths."""
    import yaml

    class _Dumper(yaml.SafeDumper):  # the Job shares its label dict with its pod template: no &id001 anchors
        def ignore_aliases(self, data: Any) -> bool:
            return True

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    header = "# Generated by `vdbench k8s` from the model's container plan. Validated against the Kubernetes\n"
    header += "# schemas (kubernetes-validate), not run against a live cluster by pytest-vdbench's CI.\n"
    for spec in specs:
        path = out_dir / f"{dns_name(spec.id)}.yaml"
        path.write_text(header + yaml.dump_all(resources_for(spec, opts), Dumper=_Dumper, sort_keys=False, width=120))
        written.append(path)
    return written
