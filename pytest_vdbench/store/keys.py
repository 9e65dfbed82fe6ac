"""Reuse keys: everything that can change a model's result, hashed (image, manifest, plugin, host, options).

Hashing is memoised per image input (context, Dockerfile, build args, base image id), so 300
models sharing one build context hash it once; base image ids come from the engine once per base.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_vdbench
from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime.host import HostInfo

__all__ = ["KeyMaker", "cpu_model", "host_class", "measurement_options"]

#: options that change what is measured (or whether a result is valid); others (report paths...) do not
MEASUREMENT_OPTIONS = ("min_rounds", "min_duration", "max_duration", "max_rounds", "precision", "sandbox")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_parts(host: HostInfo, runtime: str) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpus": host.cpus,
        "gpus": sorted(g.name for g in host.gpus),
        "driver": host.driver,
        "runtime": runtime,
    }


def host_class(host: HostInfo, runtime: str) -> str:
    """A short id of the kind of machine: results are comparable (and reusable) within one class."""
    return _digest(host_parts(host, runtime))[:16]


def measurement_options(options: Any) -> dict[str, Any]:
    return {name: getattr(options, name) for name in MEASUREMENT_OPTIONS}


def case_hash(spec: ModelSpec, case_id: str) -> str:
    """What a case's output depends on besides the image: the case itself and the model's options."""
    m = spec.manifest
    case = next(c for c in m.cases if c.id == case_id)
    return _digest({"case": case.model_dump(mode="json"), "adapter": m.adapter, "options": m.options})[:32]


@dataclass
class KeyMaker:
    """Computes model keys for one run; ``base_id(tag)`` answers the id of a base image (docker)."""

    runtime: str
    host: HostInfo
    options: Any
    base_id: Callable[[str], str | None] | None = None
    _images: dict[tuple[Any, ...], str | None] = field(default_factory=dict)
    _bases: dict[str, str | None] = field(default_factory=dict)

    def image_hash(self, spec: ModelSpec) -> str | None:
        """The image content hash (what the docker runtime tags with); None when the base is missing."""
        from pytest_vdbench.runtime.bases import base_tag
        from pytest_vdbench.runtime.images import plan_image

        image = spec.manifest.image
        tag = base_tag(image.base)
        if self.runtime == "docker":
            if self._bases.get(tag) is None:  # a missing base may be bootstrapped later in the run: ask again
                self._bases[tag] = self.base_id(tag) if self.base_id is not None else None
            base = self._bases[tag]
        else:
            base = f"process-runtime/{tag}"  # the process runtime runs the context on this host's Python
        if base is None:
            return None
        memo = (str(spec.context_dir), image.dockerfile, tuple(sorted(image.args.items())), tag, base)
        if memo not in self._images:
            try:
                self._images[memo] = plan_image(spec.context_dir, image.dockerfile, image.args, tag, base).digest
            except FileNotFoundError:
                self._images[memo] = None
        return self._images[memo]

    def parts(self, spec: ModelSpec) -> dict[str, Any] | None:
        image = self.image_hash(spec)
        if image is None:
            return None
        return {
            "image": image,
            "manifest": _digest({"variant": spec.variant, "manifest": spec.manifest.model_dump(mode="json")}),
            "plugin": pytest_vdbench.__version__,
            "host": host_class(self.host, self.runtime),
            "options": _digest(measurement_options(self.options)),
        }

    def key(self, spec: ModelSpec) -> tuple[str | None, dict[str, Any] | None]:
        parts = self.parts(spec)
        return (None, None) if parts is None else (_digest({"model": spec.id, **parts}), parts)


def docker_base_id(tag: str) -> str | None:
    """The local id of ``tag`` (None when the engine or the image is missing)."""
    try:
        import docker

        client = docker.from_env()
    except Exception:
        return None
    try:
        return str(client.images.get(tag).id)
    except Exception:
        return None
    finally:
        client.close()
