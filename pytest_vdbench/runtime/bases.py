"""Offline base images: a debootstrapped Debian imported into Docker, with a venv, the host CAs and pip."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import docker.errors
from filelock import FileLock

from pytest_vdbench.runtime.images import KIND_LABEL, BuildLog, ImageBuildError, default_lock_dir, docker_build

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = [
    "BASES",
    "BASE_LABEL",
    "RECIPE_LABEL",
    "BaseBuild",
    "BaseImageError",
    "BaseRecipe",
    "base_tag",
    "default_cache_dir",
    "ensure_base",
    "find_recipe",
    "host_ca_bundle",
    "pip_conf",
    "recipe_hash",
]

RECIPE_LABEL = "org.vdbench.recipe"
BASE_LABEL = "org.vdbench.base"
#: Bump when the build procedure changes: every base's recipe hash changes with it.
RECIPE_VERSION = "1"
CONTAINER_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_INCLUDE = ("python3", "python3-venv", "python3-pip", "ca-certificates")
#: Left out of the imported rootfs: downloaded .debs and apt lists (images run `apt-get update` first).
ROOTFS_EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CA_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


class BaseImageError(ImageBuildError):
    """A vdbench base image could not be made; the message says what to do."""


@dataclass(frozen=True)
class BaseRecipe:
    """How one vdbench base image is made; every field feeds its ``org.vdbench.recipe`` label."""

    name: str
    tag: str
    suite: str
    python: str
    parent: str | None = None
    include: tuple[str, ...] = DEFAULT_INCLUDE
    mirror: str = DEFAULT_MIRROR
    host_wheels: tuple[str, ...] = ()
    pip_install: tuple[str, ...] = ()


BASES: dict[str, BaseRecipe] = {
    "bookworm": BaseRecipe("bookworm", "vdbench/base:bookworm", "bookworm", "3.11"),
    "bullseye": BaseRecipe("bullseye", "vdbench/base:bullseye", "bullseye", "3.9"),
    "torch-cpu": BaseRecipe(
        "torch-cpu",
        "vdbench/torch-cpu:bookworm",
        "bookworm",
        "3.11",
        parent="bookworm",
        host_wheels=("torch==2.13.0+cpu",),
        pip_install=("numpy",),
    ),
}


@dataclass(frozen=True)
class BaseBuild:
    """The outcome of ``ensure_base``: ``built`` is False when the labelled image was up to date."""

    name: str
    tag: str
    image_id: str
    recipe_hash: str
    built: bool
    seconds: float
    steps: Mapping[str, float] = field(default_factory=dict)
    log_path: Path | None = None


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vdbench`` or ``~/.cache/vdbench``: debootstrapped rootfs and base logs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vdbench"


def find_recipe(ref: str) -> BaseRecipe | None:
    """The recipe for a manifest base name ("bookworm") or a vdbench base tag; None for other refs."""
    if ref in BASES:
        return BASES[ref]
    return next((r for r in BASES.values() if r.tag == ref), None)


def base_tag(ref: str) -> str:
    """The image a manifest ``base`` names: vdbench base names map to their tag, other refs stay."""
    recipe = find_recipe(ref)
    return recipe.tag if recipe is not None else ref


# --- host inputs -------------------------------------------------------------------------------


def host_ca_bundle() -> Path:
    """The host's CA bundle, which containers must trust (the registries' TLS may be intercepted)."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"), *_CA_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    looked = ", ".join(("$SSL_CERT_FILE", "$REQUESTS_CA_BUNDLE", *_CA_CANDIDATES))
    raise BaseImageError("base", f"no CA bundle found on this host (looked at {looked}); set SSL_CERT_FILE", [], None)


def pip_conf(config_list: str) -> str:
    """The image's /etc/pip.conf from ``pip config list`` output: cert, plus http(s) indexes only."""
    index: list[str] = []
    extra: list[str] = []
    for line in config_list.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        urls = [u for u in value.strip().strip("'\"").split() if u.startswith(("http://", "https://"))]
        if key.endswith(".extra-index-url"):
            extra += [u for u in urls if u not in extra]
        elif key.endswith(".index-url"):
            # `pip config list` sorts keys, so :env: (PIP_INDEX_URL) comes before global.: env wins, as in pip.
            index += urls[:1] if not index else []
    lines = ["[global]", f"cert = {CONTAINER_CA_BUNDLE}"]
    if index:
        lines.append(f"index-url = {index[0]}")
    if extra:
        lines.append(f"extra-index-url = {' '.join(extra)}")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def _host_pip_config_list() -> str:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _debian_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


# --- recipes -------------------------------------------------------------------------------------


def _rootfs_key(recipe: BaseRecipe) -> str:
    inputs = {
        "version": RECIPE_VERSION,
        "suite": recipe.suite,
        "include": recipe.include,
        "mirror": recipe.mirror,
        "arch": _debian_arch(),
        "excludes": ROOTFS_EXCLUDES,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _root_dockerfile(recipe: BaseRecipe) -> str:
    major, minor = recipe.python.split(".")
    env = {
        "PATH": f"/opt/venv/bin:{SYSTEM_PATH}",
        "VIRTUAL_ENV": "/opt/venv",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CERT": CONTAINER_CA_BUNDLE,
        "REQUESTS_CA_BUNDLE": CONTAINER_CA_BUNDLE,
        "SSL_CERT_FILE": CONTAINER_CA_BUNDLE,
    }
    env_lines = " \\\n    ".join(f"{k}={v}" for k, v in env.items())
    check = f"import sys; assert sys.version_info[:2] == ({major}, {minor}), sys.version"
    return f"""\
ARG ROOTFS
FROM ${{ROOTFS}}
COPY ca-certificates.crt {CONTAINER_CA_BUNDLE}
COPY pip.conf /etc/pip.conf
ENV {env_lines}
# Debian's PEP 668 marker forbids system-wide pip installs: models install into /opt/venv.
RUN mkdir -p /var/lib/apt/lists/partial /app \\
 && python3 -m venv /opt/venv \\
 && useradd --uid 10001 --user-group --home-dir /tmp --no-create-home --shell /bin/sh vdbench \\
 && python -c {shlex.quote(check)} && python --version && pip --version
WORKDIR /app
CMD ["python"]
"""


def _layer_dockerfile(recipe: BaseRecipe) -> str:
    packages = " ".join(shlex.quote(p) for p in recipe.pip_install)
    wheels = "/tmp/vdbench-wheels/*.whl" if recipe.host_wheels else ""
    specs = (*recipe.host_wheels, *recipe.pip_install)
    names = ", ".join(re.split(r"[=<>!~\[;]", s)[0].replace("-", "_") for s in specs)
    # Two stages: the wheels stay in the throwaway stage, only the filled venv is copied over.
    return f"""\
ARG BASE
FROM ${{BASE}} AS install
COPY wheels/ /tmp/vdbench-wheels/
RUN pip install {wheels} {packages}
FROM ${{BASE}}
COPY --from=install /opt/venv /opt/venv
RUN python -c "import {names}; print('imports ok')" && pip list
"""


def _dockerfile(recipe: BaseRecipe) -> str:
    return _layer_dockerfile(recipe) if recipe.parent else _root_dockerfile(recipe)


def recipe_hash(recipe: BaseRecipe) -> str:
    """sha256 over the recipe, its Dockerfile, its parent's hash and the host inputs it copies in."""
    inputs: dict[str, object] = {
        "version": RECIPE_VERSION,
        "recipe": asdict(recipe),
        "dockerfile": _dockerfile(recipe),
    }
    if recipe.parent:
        inputs["parent"] = recipe_hash(_recipe(recipe.parent))
    else:
        inputs["rootfs"] = _rootfs_key(recipe)
        inputs["ca"] = hashlib.sha256(host_ca_bundle().read_bytes()).hexdigest()
        inputs["pip_conf"] = pip_conf(_host_pip_config_list())
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _recipe(name: str) -> BaseRecipe:
    recipe = find_recipe(name)
    if recipe is None:
        known = ", ".join(sorted(BASES))
        raise BaseImageError(name, f"{name!r} is not a vdbench base; known bases: {known}", [], None)
    return recipe


# --- ensure -------------------------------------------------------------------------------------


def _label(client: DockerClient, tag: str) -> str | None:
    try:
        labels = client.images.get(tag).labels
    except docker.errors.ImageNotFound:
        return None
    value = labels.get(RECIPE_LABEL)
    return None if value is None else str(value)


def ensure_base(
    client: DockerClient,
    name: str,
    *,
    cache_dir: Path | None = None,
    lock_dir: Path | None = None,
    force: bool = False,
    stream: Callable[[str], None] | None = None,
) -> BaseBuild:
    """Make sure the vdbench base ``name`` exists with the current recipe; build it otherwise.

    Builds only when the image is missing or its ``org.vdbench.recipe`` label differs (or
    ``force``). A file lock in ``lock_dir`` lets parallel xdist workers build once. The
    debootstrapped rootfs is cached under ``cache_dir``; delete it there to bootstrap again.
    """
    recipe = _recipe(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    locks = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    start = time.monotonic()
    steps: dict[str, float] = {}
    if recipe.parent:
        parent = ensure_base(client, recipe.parent, cache_dir=cache, lock_dir=locks, stream=stream)
        if parent.built:
            steps[f"parent {parent.name}"] = parent.seconds
    want = recipe_hash(recipe)
    log_path = cache / "logs" / f"base-{recipe.name}-{want[:16]}.log"
    if not force and _label(client, recipe.tag) == want:
        return _done(client, recipe, want, built=False, start=start, steps=steps, log_path=log_path)
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"base-{recipe.name}.lock")):
        if not force and _label(client, recipe.tag) == want:
            return _done(client, recipe, want, built=False, start=start, steps=steps, log_path=log_path)
        with BuildLog(log_path, stream) as log:
            log.line(f"vdbench: building base {recipe.tag} (recipe {want[:16]})")
            if recipe.parent:
                _build_layer(client, recipe, want, log=log, steps=steps)
            else:
                _build_root(client, recipe, want, cache=cache, log=log, steps=steps)
    return _done(client, recipe, want, built=True, start=start, steps=steps, log_path=log_path)


def _done(
    client: DockerClient,
    recipe: BaseRecipe,
    want: str,
    *,
    built: bool,
    start: float,
    steps: dict[str, float],
    log_path: Path,
) -> BaseBuild:
    image_id = client.images.get(recipe.tag).id
    assert image_id is not None
    return BaseBuild(
        recipe.name,
        recipe.tag,
        image_id,
        want,
        built,
        time.monotonic() - start,
        steps,
        log_path if log_path.exists() else None,
    )


def _build_root(
    client: DockerClient,
    recipe: BaseRecipe,
    want: str,
    *,
    cache: Path,
    log: BuildLog,
    steps: dict[str, float],
) -> None:
    rootfs_tag = f"vdbench/rootfs:{recipe.suite}-{_rootfs_key(recipe)[:12]}"
    try:
        client.images.get(rootfs_tag)
        log.line(f"vdbench: reusing {rootfs_tag}")
    except docker.errors.ImageNotFound:
        t0 = time.monotonic()
        root, fresh = _rootfs(recipe, cache, log)
        if fresh:
            steps["debootstrap"] = time.monotonic() - t0
        t0 = time.monotonic()
        _import_rootfs(client, root, rootfs_tag, recipe, log)
        steps["import"] = time.monotonic() - t0
    t0 = time.monotonic()
    files = {
        "Dockerfile": _dockerfile(recipe).encode(),
        "ca-certificates.crt": host_ca_bundle().read_bytes(),
        "pip.conf": pip_conf(_host_pip_config_list()).encode(),
    }
    context = io.BytesIO()
    _write_tar(context, files, {})
    docker_build(
        client,
        context,
        tag=recipe.tag,
        dockerfile="Dockerfile",
        buildargs={"ROOTFS": rootfs_tag},
        labels=_labels(recipe, want),
        log=log,
        name=recipe.tag,
    )
    steps["layer"] = time.monotonic() - t0


def _build_layer(
    client: DockerClient,
    recipe: BaseRecipe,
    want: str,
    *,
    log: BuildLog,
    steps: dict[str, float],
) -> None:
    parent = _recipe(recipe.parent or "")
    with tempfile.TemporaryDirectory(prefix="vdbench-wheels-") as tmp, tempfile.TemporaryFile() as context:
        t0 = time.monotonic()
        wheels = _host_wheels(recipe, Path(tmp), log)
        steps["wheels"] = time.monotonic() - t0
        t0 = time.monotonic()
        dockerfile = {"Dockerfile": _dockerfile(recipe).encode()}
        _write_tar(context, dockerfile, {f"wheels/{w.name}": w for w in wheels}, ["wheels"])
        docker_build(
            client,
            context,
            tag=recipe.tag,
            dockerfile="Dockerfile",
            buildargs={"BASE": parent.tag},
            labels=_labels(recipe, want),
            log=log,
            name=recipe.tag,
        )
        steps["layer"] = time.monotonic() - t0


def _labels(recipe: BaseRecipe, want: str) -> dict[str, str]:
    return {RECIPE_LABEL: want, KIND_LABEL: "base", BASE_LABEL: recipe.name}


def _write_tar(
    fileobj: IO[bytes],
    data: Mapping[str, bytes],
    paths: Mapping[str, Path],
    dirs: Sequence[str] = (),
) -> None:
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for arcname, blob in data.items():
            info = tarfile.TarInfo(arcname)
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
        for arcname, path in paths.items():
            tar.add(path, arcname=arcname, recursive=False)
    fileobj.seek(0)


def _host_wheels(recipe: BaseRecipe, dest: Path, log: BuildLog) -> list[Path]:
    """Find each ``host_wheels`` requirement through the host's pip configuration (no network)."""
    for spec in recipe.host_wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            spec,
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            recipe.python,
            "--implementation",
            "cp",
            "-d",
            str(dest),
        ]
        log.line("$ " + shlex.join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        output = (done.stdout + done.stderr).splitlines()
        for line in output:
            log.line(line)
        if done.returncode != 0:
            tag = recipe.python.replace(".", "")
            raise BaseImageError(
                recipe.tag,
                f"pip on this host cannot find a wheel for {spec} (Python {recipe.python}). "
                f"Put the wheel (for example torch-2.13.0+cpu-cp{tag}-cp{tag}-manylinux_2_28_x86_64.whl) "
                "in a directory and point pip at it with `pip config set global.find-links DIR` "
                "(or PIP_FIND_LINKS=DIR), then run `vdbench images bootstrap --base "
                f"{recipe.name}` again",
                list(log.tail),
                log.path,
            )
    wheels = sorted(dest.glob("*.whl"))
    log.line("vdbench: host wheels: " + ", ".join(f"{w.name} ({w.stat().st_size >> 20} MiB)" for w in wheels))
    return wheels


# --- rootfs -------------------------------------------------------------------------------------


def _rootfs(recipe: BaseRecipe, cache: Path, log: BuildLog) -> tuple[Path, bool]:
    """The debootstrapped rootfs for ``recipe`` and whether it is new (else the cached one)."""
    key = _rootfs_key(recipe)
    top = cache / "rootfs"
    top.mkdir(parents=True, exist_ok=True)
    root, marker, partial = top / recipe.suite, top / f"{recipe.suite}.json", top / f"{recipe.suite}.partial"
    with FileLock(str(top / f"{recipe.suite}.lock")):
        if root.is_dir() and marker.is_file() and json.loads(marker.read_text()).get("key") == key:
            log.line(f"vdbench: reusing the cached rootfs {root}")
            return root, False
        if os.geteuid() != 0:
            raise BaseImageError(recipe.tag, "debootstrap needs root: run `vdbench images bootstrap` as root", [], None)
        debootstrap = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if debootstrap is None:
            raise BaseImageError(
                recipe.tag,
                "debootstrap is not installed: `apt-get install -y debootstrap` (scripts/start-docker.sh does it)",
                [],
                None,
            )
        marker.unlink(missing_ok=True)
        _remove_tree(partial)
        _remove_tree(root)
        cmd = [
            debootstrap,
            "--variant=minbase",
            f"--arch={_debian_arch()}",
            f"--include={','.join(recipe.include)}",
            recipe.suite,
            str(partial),
            recipe.mirror,
        ]
        t0 = time.monotonic()
        _run_logged(cmd, log, recipe.tag)
        partial.rename(root)
        seconds = round(time.monotonic() - t0, 1)
        marker.write_text(json.dumps({"key": key, "seconds": seconds, "suite": recipe.suite}))
        return root, True


def _remove_tree(path: Path) -> None:
    """Delete a half-made rootfs, never one that still has /proc or /sys mounted inside."""
    if not path.exists():
        return
    inside = str(path.resolve()) + "/"
    with Path("/proc/self/mounts").open(encoding="utf-8") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(inside)]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(path)


def _run_logged(cmd: Sequence[str], log: BuildLog, name: str) -> None:
    log.line("$ " + shlex.join(cmd))
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.line(line.rstrip("\n"))
        rc = proc.wait()
    if rc != 0:
        raise BaseImageError(name, f"{cmd[0]} exited with {rc}", list(log.tail), log.path)


def _import_rootfs(client: DockerClient, root: Path, tag: str, recipe: BaseRecipe, log: BuildLog) -> None:
    """``tar -C root -c . | docker import``, streamed through docker-py."""
    cmd = ["tar", "-C", str(root), "--numeric-owner", *(f"--exclude={p}" for p in ROOTFS_EXCLUDES), "-c", "."]
    log.line("$ " + shlex.join(cmd) + f" | docker import - {tag}")
    repo, _, version = tag.partition(":")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout

        def chunks() -> Iterator[bytes]:
            yield from iter(lambda: out.read(1 << 20), b"")

        try:
            result = client.api.import_image(
                src=chunks(),
                repository=repo,
                tag=version,
                stream_src=True,
                changes=[f"ENV PATH={SYSTEM_PATH}", 'CMD ["/bin/bash"]'],
            )
        except docker.errors.APIError as exc:
            proc.kill()
            raise BaseImageError(recipe.tag, f"docker import failed: {exc}", list(log.tail), log.path) from None
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait()
    log.line(f"vdbench: docker import: {str(result).strip()}")
    if rc != 0:
        raise BaseImageError(recipe.tag, f"tar exited with {rc}: {err.strip()}", list(log.tail), log.path)
