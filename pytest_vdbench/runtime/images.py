"""Content-addressed model images: hash the build inputs, build once, reuse the tag afterwards."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, TYPE_CHECKING

import docker
import docker.errors
from filelock import FileLock

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = [
    "BuildLog",
    "BuildResult",
    "DockerUnavailable",
    "ImageBuildError",
    "ImagePlan",
    "build_image",
    "connect_docker",
    "default_lock_dir",
    "docker_build",
    "image_repo",
    "plan_image",
    "sdk_files",
    "write_context_tar",
]

KIND_LABEL = "org.vdbench.kind"
MODEL_LABEL = "org.vdbench.model"
HASH_LABEL = "org.vdbench.hash"
SDK_DIR = ".vdbench-sdk"
#: Bump when the way inputs are hashed or images are built changes: every model tag changes with it.
HASH_VERSION = "1"
TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class DockerUnavailable(Exception):
    """No Docker engine answers; the message carries docker-py's reason and the fix."""


def collect_leaked_sockets() -> None:
    """docker-py leaks the socket of a failed API version negotiation: collect it now, quietly,
    rather than as a ResourceWarning at some later, unrelated point (an error under -W error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def connect_docker() -> DockerClient:
    """A docker-py client from the environment (DOCKER_HOST...) that answered a ping."""
    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        reason = str(exc)
    collect_leaked_sockets()
    raise DockerUnavailable(f"no Docker engine answers ({reason}); run scripts/start-docker.sh or set DOCKER_HOST")


#: timeouts.build's default: one image build
DEFAULT_BUILD_TIMEOUT = 1800.0


def default_lock_dir() -> Path:
    """Where build locks live unless a lock dir is passed: one fixed folder per user (not under
    TMPDIR), so every run of this user on the host, whatever its TMPDIR, builds a hash once."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vdbench" / "locks"


class ImageBuildError(Exception):
    """A docker build failed: the message names the image, the reason, the log tail and the log."""

    def __init__(self, name: str, reason: str, tail: list[str], log_path: Path | None) -> None:
        lines = [f"building the image for {name!r} failed: {reason}"]
        if tail:
            lines.append(f"--- last {len(tail)} build log lines ---")
            lines.extend(tail)
        if log_path is not None:
            lines.append(f"--- full build log: {log_path}")
        super().__init__("\n".join(lines))
        self.name = name
        self.reason = reason
        self.tail = tail
        self.log_path = log_path


class BuildLog:
    """One build's log: each line goes to a file, to the optional ``stream`` and to a short tail."""

    def __init__(self, path: Path, stream: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.stream = stream
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def line(self, text: str) -> None:
        """Record one line (without its newline)."""
        self._file.write(text + "\n")
        self._file.flush()
        self.tail.append(text)
        if self.stream is not None:
            self.stream(text)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class ImagePlan:
    """Everything a model image is built from, and the digest of it all."""

    context_dir: Path
    dockerfile: str
    build_args: tuple[tuple[str, str], ...]
    base_tag: str
    base_id: str
    digest: str
    files: tuple[str, ...]
    #: files vdbench writes into the context itself (a cog.yaml model's Dockerfile): (path, content)
    generated: tuple[tuple[str, bytes], ...] = ()

    @property
    def short(self) -> str:
        """The first 16 hex digits of the digest: the image tag."""
        return self.digest[:16]

    def tag(self, name: str) -> str:
        """``vdbench/<model name>:<short digest>``."""
        return f"vdbench/{image_repo(name)}:{self.short}"


@dataclass(frozen=True)
class BuildResult:
    """What ``build_image`` did; ``cached`` means the tag existed and nothing was built."""

    tag: str
    image_id: str
    size_bytes: int
    build_seconds: float
    cached: bool
    log_path: Path


def image_repo(name: str) -> str:
    """A model name made into a valid docker repository path component."""
    repo = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    repo = re.sub(r"[._-]{2,}", "-", repo).strip("._-")
    if not repo:
        raise ValueError(f"model name {name!r} has no character usable in an image name")
    return repo[:100]


def sdk_files() -> list[tuple[str, Path]]:
    """The adapter SDK sources as (path inside ``.vdbench-sdk/``, host path), sorted."""
    files = [("pytest_vdbench/__init__.py", _PACKAGE_DIR / "__init__.py")]
    files += [(f"pytest_vdbench/adapter/{p.name}", p) for p in sorted((_PACKAGE_DIR / "adapter").glob("*.py"))]
    return files


# --- .dockerignore ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex over slash paths."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


class _Ignore:
    """The rules of a .dockerignore: later lines win, ``!`` re-includes, a dir match covers its files."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:].strip() if negate else line
            cleaned = os.path.normpath(line.lstrip("/")).replace(os.sep, "/")
            if cleaned in ("", "."):
                continue
            self.rules.append((negate, _pattern_regex(cleaned)))
        self.has_negation = any(negate for negate, _ in self.rules)

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        result = False
        for negate, regex in self.rules:
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negate
        return result


def _context_entries(context_dir: Path, dockerfile: str) -> list[str]:
    """Relative paths (dirs, files, links) docker would receive, sorted; the Dockerfile always."""
    ignore_file = context_dir / ".dockerignore"
    ignore = _Ignore(ignore_file.read_text(encoding="utf-8") if ignore_file.is_file() else "")
    keep = {dockerfile, ".dockerignore"}
    entries: list[str] = []
    for root, dirs, files in os.walk(context_dir):
        rel_root = Path(root).relative_to(context_dir).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        kept_dirs = []
        for d in sorted(dirs):
            rel = prefix + d
            if rel == SDK_DIR:
                continue  # staged by vdbench itself
            if (context_dir / rel).is_symlink():
                files.append(d)
                continue
            excluded = ignore.excluded(rel)
            if not excluded:
                entries.append(rel)
            if not excluded or ignore.has_negation:
                kept_dirs.append(d)
        dirs[:] = kept_dirs
        for f in sorted(files):
            rel = prefix + f
            if rel in keep or not ignore.excluded(rel):
                _refuse_special(context_dir, rel)
                entries.append(rel)
    return sorted(entries)


def _refuse_special(context_dir: Path, rel: str) -> None:
    """A FIFO, device or socket in a context would block (or leak) hashing and the tar: refused."""
    mode = (context_dir / rel).lstat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
        return
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device file"
    raise FileNotFoundError(
        f"{context_dir / rel} is {kind}; an image context may hold only files, folders and links "
        "(remove it or list it in .dockerignore)"
    )


# --- planning ----------------------------------------------------------------------------------


def _update(h: hashlib._Hash, label: str, data: bytes) -> None:
    h.update(f"{label}:{len(data)}:".encode())
    h.update(data)


def _hash_file(h: hashlib._Hash, label: str, path: Path) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        _update(h, f"link {label}", os.readlink(path).encode())
    elif stat.S_ISDIR(st.st_mode):
        _update(h, f"dir {label}", b"")
    else:
        h.update(f"file {label}:{st.st_size}:{int(bool(st.st_mode & 0o111))}:".encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)


def plan_image(
    context_dir: Path,
    dockerfile: str,
    build_args: Mapping[str, str],
    base_tag: str,
    base_id: str | None = None,
    *,
    client: DockerClient | None = None,
    generated: Mapping[str, bytes] | None = None,
    inputs: Mapping[str, bytes] | None = None,
) -> ImagePlan:
    """Hash a model image's inputs: context files, Dockerfile, build args, base image id, SDK.

    ``base_id`` is the id of ``base_tag``; when omitted it is looked up through ``client``.
    ``generated``: files vdbench adds to the context under ``.vdbench-sdk/`` (the Dockerfile may be
    one); ``inputs``: more bytes the image depends on (a cog.yaml), hashed by name.
    """
    generated = dict(generated or {})
    try:
        context_dir = Path(context_dir).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise FileNotFoundError(f"image context {context_dir} is a symlink loop") from None
    if not context_dir.is_dir():
        raise FileNotFoundError(f"image context {context_dir} is not a directory")
    dockerfile = PurePosixPath(dockerfile).as_posix()
    target = context_dir / dockerfile
    if dockerfile not in generated and (
        dockerfile.startswith(("../", "/")) or not target.is_file() or not target.resolve().is_relative_to(context_dir)
    ):
        raise FileNotFoundError(f"Dockerfile {dockerfile!r} not found inside the image context {context_dir}")
    if base_id is None:
        if client is None:
            raise ValueError("plan_image needs base_id or a docker client to look up the id of base_tag")
        base_id = _base_id(client, base_tag)
    files = _context_entries(context_dir, dockerfile)
    h = hashlib.sha256()
    _update(h, "version", HASH_VERSION.encode())
    _update(h, "base_id", base_id.encode())
    _update(h, "dockerfile", dockerfile.encode())
    _update(h, "build_args", json.dumps(dict(sorted(build_args.items()))).encode())
    for rel in files:
        _hash_file(h, f"context/{rel}", context_dir / rel)
    for rel, path in sdk_files():
        _hash_file(h, f"sdk/{rel}", path)
    for name, data in sorted({**{f"generated/{k}": v for k, v in generated.items()}, **(inputs or {})}.items()):
        _update(h, name, data)
    return ImagePlan(
        context_dir=context_dir,
        dockerfile=dockerfile,
        build_args=tuple(sorted(build_args.items())),
        base_tag=base_tag,
        base_id=base_id,
        digest=h.hexdigest(),
        files=tuple(files),
        generated=tuple(sorted(generated.items())),
    )


def _base_id(client: DockerClient, base_tag: str) -> str:
    try:
        image_id = client.images.get(base_tag).id
    except docker.errors.ImageNotFound:
        raise ImageBuildError(
            base_tag,
            f"base image {base_tag!r} is not present locally (vdbench never pulls); "
            "for a vdbench base run `vdbench images bootstrap`, otherwise `docker load` or `docker pull` it",
            [],
            None,
        ) from None
    assert image_id is not None
    return str(image_id)


def write_context_tar(plan: ImagePlan, fileobj: IO[bytes]) -> None:
    """Write the build context docker receives: the planned files plus the SDK under ``.vdbench-sdk/``."""

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in plan.files:
            tar.add(plan.context_dir / rel, arcname=rel, recursive=False, filter=reset)
        sdk_dirs = [SDK_DIR, f"{SDK_DIR}/pytest_vdbench", f"{SDK_DIR}/pytest_vdbench/adapter"]
        for d in sdk_dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(info)
        for rel, path in sdk_files():
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{SDK_DIR}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(path.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
        for rel, data in plan.generated:
            if not rel.startswith(f"{SDK_DIR}/"):
                raise ValueError(f"generated file {rel!r} must live under {SDK_DIR}/ (never over the user's files)")
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    fileobj.seek(0)


# --- building ----------------------------------------------------------------------------------


def docker_build(
    client: DockerClient,
    context: IO[bytes],
    *,
    tag: str,
    dockerfile: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    log: BuildLog,
    name: str,
    network_mode: str | None = None,
    timeout: float = DEFAULT_BUILD_TIMEOUT,
) -> str:
    """Run one docker build from a tar ``context``; return the image id or raise ``ImageBuildError``.

    ``network_mode="none"``: the RUN steps get no network (``sandbox.build_network: none``).
    ``timeout`` bounds the whole build: checked at every line of output, and as the read timeout
    while the build is silent (so a silent step ends it within twice ``timeout`` at worst).
    """
    import requests.exceptions
    import urllib3.exceptions

    image_id: str | None = None
    error: str | None = None
    pending = ""
    deadline = time.monotonic() + timeout
    chunks: Iterator[dict[str, object]] | None = None
    try:
        chunks = client.api.build(
            timeout=max(1, int(timeout)),
            fileobj=context,
            custom_context=True,
            tag=tag,
            dockerfile=dockerfile,
            buildargs=dict(buildargs),
            labels=dict(labels),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            network_mode=network_mode,
        )
        for chunk in chunks:
            if time.monotonic() > deadline:
                error = f"the build ran past its timeout of {timeout:g}s (timeouts.build in the manifest)"
                break
            if isinstance(chunk.get("stream"), str):
                pending += str(chunk["stream"])
                *done, pending = pending.split("\n")
                for line in done:
                    log.line(_ANSI.sub("", line).rstrip("\r"))
            elif chunk.get("error"):
                error = str(chunk["error"]).strip()
            elif isinstance(chunk.get("aux"), dict):
                aux = chunk["aux"]
                assert isinstance(aux, dict)
                image_id = str(aux.get("ID") or "") or image_id
            elif chunk.get("status"):
                log.line(str(chunk["status"]))
    except docker.errors.APIError as exc:
        error = str(exc.explanation or exc)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        # the read timeout of a silent build (raised raw from the stream), a lost engine
        late = time.monotonic() > deadline - 1
        error = f"the build ran past its timeout of {timeout:g}s (timeouts.build in the manifest)" if late else str(exc)
    finally:
        if chunks is not None and hasattr(chunks, "close"):
            chunks.close()  # hang up: the engine cancels a build whose client is gone
    if pending:
        log.line(_ANSI.sub("", pending))
    if error is not None:
        log.line(f"ERROR: {error}")
        raise ImageBuildError(name, error, list(log.tail), log.path)
    if not image_id:
        found = client.images.get(tag).id
        assert found is not None
        image_id = found
    return image_id


def build_image(
    client: DockerClient,
    plan: ImagePlan,
    name: str,
    log_dir: Path,
    stream: Callable[[str], None] | None = None,
    *,
    lock_dir: Path | None = None,
    network_mode: str | None = None,
    timeout: float = DEFAULT_BUILD_TIMEOUT,
) -> BuildResult:
    """Build ``plan`` as ``vdbench/<name>:<hash>`` unless that tag exists (then ``cached=True``).

    One build per content hash across processes and models: a file lock in ``lock_dir`` makes xdist
    workers wait for the one building, then reuse its image; a model whose inputs hash the same as
    another's (two models served from one build context, as GANBLR and GANBLR++) gets that image
    tagged under its own name instead of a build (``org.vdbench.model`` then names the model it was
    first built for). Docker's layer cache applies as usual.

    The build runs under a private tag that becomes ``tag`` only once it succeeded, so a failed,
    timed-out or interrupted build leaves no tag behind; an existing ``tag`` is never re-pointed.
    """
    tag = plan.tag(name)
    log_path = Path(log_dir) / f"{image_repo(name)}-{plan.short}.log"
    found = _existing(client, tag, log_path)
    if found is not None:
        return found
    locks = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"image-{plan.short}.lock")):
        found = _existing(client, tag, log_path) or _same_hash(client, plan, tag, log_path)
        if found is not None:
            return found
        start = time.monotonic()
        partial = f"{tag}-partial-{os.getpid()}"
        with BuildLog(log_path, stream) as log, tempfile.TemporaryFile() as context:
            log.line(f"vdbench: building {tag} for {name!r} from {plan.context_dir} ({len(plan.files)} entries)")
            write_context_tar(plan, context)
            try:
                image_id = docker_build(
                    client,
                    context,
                    tag=partial,
                    dockerfile=plan.dockerfile,
                    buildargs={**dict(plan.build_args), "BASE": plan.base_tag},
                    labels={KIND_LABEL: "model", MODEL_LABEL: name, HASH_LABEL: plan.digest},
                    log=log,
                    name=name,
                    timeout=timeout,
                    network_mode=network_mode,
                )
                found = _publish(client, image_id, partial, tag, log_path)
            finally:
                _untag(client, partial)
            if found is not None:
                log.line(f"vdbench: {tag} appeared meanwhile ({found.image_id}); kept, not re-pointed")
                if found.image_id != image_id:  # ours is now untagged: not left dangling
                    with contextlib.suppress(docker.errors.DockerException):
                        client.images.remove(image_id)
                return found
            seconds = time.monotonic() - start
            log.line(f"vdbench: built {tag} ({image_id}) in {seconds:.1f}s")
    size = client.images.get(image_id).attrs.get("Size", 0)
    return BuildResult(tag, image_id, int(size or 0), seconds, False, log_path)


def _publish(client: DockerClient, image_id: str, partial: str, tag: str, log_path: Path) -> BuildResult | None:
    """Tag the finished build ``tag``, unless ``tag`` exists already (returned then, untouched)."""
    found = _existing(client, tag, log_path)
    if found is not None:
        return found
    repo, _, version = tag.rpartition(":")
    client.images.get(image_id).tag(repo, version)
    return None


def _untag(client: DockerClient, partial: str) -> None:
    """Drop the private build tag (the image stays under its real tag, if it got one)."""
    with contextlib.suppress(docker.errors.DockerException):  # never created: the build failed first
        client.images.remove(partial, noprune=True)


def _same_hash(client: DockerClient, plan: ImagePlan, tag: str, log_path: Path) -> BuildResult | None:
    """An image built from the same inputs for another model, tagged ``tag`` too; None if there is none."""
    image = next(iter(client.images.list(filters={"label": f"{HASH_LABEL}={plan.digest}"})), None)
    if image is None or image.id is None:
        return None
    repo, _, version = tag.rpartition(":")
    image.tag(repo, version)
    source = next((t for t in image.tags if t != tag), image.id)
    with BuildLog(log_path) as log:
        log.line(f"vdbench: {tag} is {image.id}, already built from the same inputs as {source}")
    return BuildResult(tag, image.id, int(image.attrs.get("Size", 0) or 0), 0.0, True, log_path)


def _existing(client: DockerClient, tag: str, log_path: Path) -> BuildResult | None:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    assert image.id is not None
    return BuildResult(tag, image.id, int(image.attrs.get("Size", 0) or 0), 0.0, True, log_path)
