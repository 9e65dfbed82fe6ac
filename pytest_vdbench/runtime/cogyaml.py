"""Cog models as they ship: a ``cog.yaml`` rendered as the Dockerfile ``cog build`` would make (CPU).

``image: {cog: path/to/cog.yaml}`` in a manifest builds the model's image from the Cog model's own
directory, unedited: ``build.python_version`` picks the vdbench base with that Python (or fails
with the list of bases), ``build.system_packages`` are installed with apt from the base's Debian
mirror, ``build.python_packages`` / ``build.python_requirements`` and ``cog==COG_VERSION`` with
pip, ``build.run`` commands run as root in order, then the directory is copied to ``/src`` (Cog's
working directory) and ``predict`` becomes ``COG_PREDICT_TYPE_STUB``. GPU builds (``gpu: true``)
need CUDA base images, which vdbench does not make: those are refused with the reason.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_vdbench.manifest import ModelSpec

__all__ = [
    "COG_DOCKERFILE",
    "COG_VERSION",
    "CogConfig",
    "CogYamlError",
    "base_for_python",
    "cog_dockerfile",
    "image_source",
    "load_cog_yaml",
]

COG_VERSION = "0.23.1"  # as containers/cog-example installs it; it needs Python >= 3.10
COG_MIN_PYTHON = (3, 10)
#: where the generated Dockerfile sits in the build context (beside the staged SDK, never in the user's folder)
COG_DOCKERFILE = ".vdbench-sdk/cog.Dockerfile"


class CogYamlError(ValueError):
    """A cog.yaml vdbench cannot build; the message names the file, the key, the value and the fix."""


class CogRun(BaseModel):
    """A ``build.run`` entry in its long form."""

    model_config = ConfigDict(extra="forbid")
    command: str
    mounts: list[Any] = Field(default_factory=list)


class CogBuild(BaseModel):
    """cog.yaml's ``build`` section (the keys ``cog build`` reads for a CPU image)."""

    model_config = ConfigDict(extra="forbid")
    gpu: bool = False
    python_version: str = "3.11"  # Cog's own default
    python_packages: list[str] = Field(default_factory=list)
    python_requirements: str | None = None
    system_packages: list[str] = Field(default_factory=list)
    run: list[str | CogRun] = Field(default_factory=list)
    cuda: str | None = None
    cudnn: str | None = None

    @field_validator("python_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        if isinstance(value, float):  # YAML reads 3.10 as 3.1: say so rather than pick a wrong base
            raise ValueError(f'{value!r} is a YAML number; quote it (python_version: "3.10")')
        return str(value)


class CogConfig(BaseModel):
    """A parsed cog.yaml; keys vdbench has no use for (``image``, ``concurrency``, ...) are kept, unused."""

    model_config = ConfigDict(extra="allow")
    build: CogBuild = Field(default_factory=CogBuild)
    predict: str | None = None
    environment: list[str] = Field(default_factory=list)


def load_cog_yaml(path: Path) -> CogConfig:
    """Parse ``path``; CogYamlError names the file and key of any problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CogYamlError(f"{path}: cannot read cog.yaml: {exc}") from None
    try:
        return CogConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise CogYamlError(f"{path}: {key}: {err['msg']} (got {err.get('input')!r})") from None


def cog_yaml_problems(cog: Path) -> list[str]:
    """What keeps a cog.yaml from building here ([] when it renders to a Dockerfile and its predictor
    module is beside it): ``vdbench validate``'s and collection's check of an ``image.cog``."""
    try:
        cfg = load_cog_yaml(cog)
        cog_dockerfile(cfg, base_for_python(cfg.build.python_version, str(cog)), str(cog))
    except CogYamlError as exc:
        return [str(exc)]
    module = str(cfg.predict).partition(":")[0]
    if module.endswith(".py") and not (cog.parent / module).is_file():
        return [f"{cog}: predict: {module} is not in {cog.parent}"]
    return []


def base_for_python(version: str, where: str = "cog.yaml") -> str:
    """The vdbench base whose Python is ``version`` (major.minor; a patch level is ignored)."""
    from pytest_vdbench.runtime.bases import BASES

    wanted = ".".join(version.split(".")[:2])
    for recipe in BASES.values():
        if recipe.parent is None and recipe.python == wanted:
            return recipe.name
    listed = ", ".join(f"{r.name} (Python {r.python})" for r in BASES.values())
    raise CogYamlError(f"{where}: build.python_version {version!r}: no vdbench base has Python {wanted}; bases: {listed}")


def _check(cfg: CogConfig, where: str) -> None:
    b = cfg.build
    if b.gpu or b.cuda or b.cudnn:
        raise CogYamlError(
            f"{where}: build.gpu/cuda: vdbench builds cog.yaml models for CPU only (it makes no CUDA base); "
            "set gpu: false, or write a Dockerfile on a CUDA image and use image.context"
        )
    if b.python_packages and b.python_requirements:
        raise CogYamlError(f"{where}: build.python_packages and build.python_requirements: Cog takes one of them, not both")
    mounted = [r.command for r in b.run if isinstance(r, CogRun) and r.mounts]
    if mounted:
        raise CogYamlError(f"{where}: build.run mounts (secrets) are not supported: {mounted[0]!r}")
    version = tuple(int(p) for p in b.python_version.split(".")[:2] if p.isdigit())
    if version < COG_MIN_PYTHON:
        raise CogYamlError(
            f"{where}: build.python_version {b.python_version!r}: cog=={COG_VERSION} (the server vdbench installs) "
            f'needs Python >= {".".join(map(str, COG_MIN_PYTHON))}; use "3.11" (bookworm)'
        )
    if cfg.predict is None:
        raise CogYamlError(f'{where}: predict: required (e.g. predict: "predict.py:Predictor")')


def _apt(packages: list[str], base: str) -> str:
    names = " ".join(shlex.quote(p) for p in packages)
    fail = shlex.quote(
        f"vdbench: apt-get could not install cog.yaml build.system_packages [{', '.join(packages)}] on the {base} base "
        "(Debian's mirror unreachable from the build, or no such package in that Debian release)"
    )
    return (
        f"RUN (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {names}) "
        f"|| {{ echo {fail} >&2; exit 100; }}; rm -rf /var/lib/apt/lists/*"
    )


def cog_dockerfile(cfg: CogConfig, base: str, where: str = "cog.yaml") -> str:
    """The Dockerfile of a cog.yaml (``FROM ${BASE}``: vdbench passes the base's tag as BASE)."""
    _check(cfg, where)
    b = cfg.build
    lines = [f"# Generated by vdbench from {where} (as `cog build` would, CPU); do not edit.", "ARG BASE", "FROM ${BASE}"]
    if b.system_packages:
        lines.append(_apt(b.system_packages, base))
    pip = ["pip", "install", "--no-cache-dir", f"cog=={COG_VERSION}", *b.python_packages]
    if b.python_requirements:
        lines.append(f"COPY {json.dumps([b.python_requirements, '/tmp/cog-requirements.txt'])}")
        pip += ["-r", "/tmp/cog-requirements.txt"]
    lines.append(f"RUN {shlex.join(pip)}")
    for entry in b.run:
        lines.append(f"RUN {entry if isinstance(entry, str) else entry.command}")
    env = {"PORT": "5000", "COG_PREDICT_TYPE_STUB": str(cfg.predict)}
    for item in cfg.environment:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CogYamlError(f"{where}: environment: {item!r} is not KEY=VALUE")
        env[key] = value
    lines += [
        "COPY . /src",
        "WORKDIR /src",
        "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()),
        "USER 10001",
        "EXPOSE 5000",
        'CMD ["python", "-m", "cog.server.http", "--host", "0.0.0.0"]',
    ]
    return "\n".join(lines) + "\n"


def image_source(spec: ModelSpec) -> tuple[str, str, dict[str, bytes], dict[str, bytes]]:
    """(base, Dockerfile path, generated files, extra hashed inputs) of the model's image.

    A ``Dockerfile`` model: its own. A cog.yaml model (``image.cog``): the Dockerfile rendered from
    cog.yaml, on the base its ``build.python_version`` picks; the cog.yaml bytes are hashed too.
    """
    image = spec.manifest.image
    cog = spec.cog_file
    if cog is None:
        return image.base, image.dockerfile, {}, {}
    cfg = load_cog_yaml(cog)
    where = f"{cog} (image.cog in {spec.path})"
    base = base_for_python(cfg.build.python_version, where)
    text = cog_dockerfile(cfg, base, where)
    return base, COG_DOCKERFILE, {COG_DOCKERFILE: text.encode()}, {"cog.yaml": cog.read_bytes()}
