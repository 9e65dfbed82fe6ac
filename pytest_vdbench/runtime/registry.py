"""A registry the compute nodes pull from: each content-addressed image pushed once, run by digest.

``--vdbench-registry HOST:PORT[/prefix]``. The registry is asked first (``HEAD`` of the tag's
manifest): an image whose content hash is already there is not pushed again, by this run or any
other. The reference the nodes run is ``HOST:PORT/prefix/REPO@sha256:...``, so a node never runs
a tag that moved.
"""

from __future__ import annotations

import argparse
import http.client
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Registry", "RegistryError", "parse_registry"]

_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})(?:/(?P<prefix>[a-z0-9._/-]+))?$")


class RegistryError(Exception):
    """The registry cannot be reached or refused the push: worded for one line."""


@dataclass(frozen=True)
class Registry:
    """``HOST:PORT[/prefix]`` of a Docker Registry HTTP API v2 (plain HTTP on loopback, else HTTPS)."""

    host: str
    port: int
    prefix: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address + (f"/{self.prefix}" if self.prefix else "")

    def repository(self, local_tag: str) -> tuple[str, str]:
        """(name in the registry, tag) for a local ``vdbench/REPO:HASH`` tag."""
        name, _, tag = local_tag.rpartition(":")
        path = f"{self.prefix}/{name}" if self.prefix else name
        return path, tag

    def _connection(self) -> http.client.HTTPConnection:
        loopback = self.host in ("localhost", "[::1]") or self.host.startswith("127.")
        cls = http.client.HTTPConnection if loopback else http.client.HTTPSConnection
        return cls(self.host.strip("[]"), self.port, timeout=5)

    def unreachable(self) -> str | None:
        """None when ``GET /v2/`` answers (200 or 401); otherwise why not, in one line."""
        try:
            conn = self._connection()
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
        except OSError as exc:
            return f"no registry answers at {self.address} ({exc.__class__.__name__}: {exc})"
        if status not in (200, 401):
            return f"{self.address}/v2/ answered HTTP {status}: not a Docker registry"
        return None

    def digest(self, path: str, tag: str) -> str | None:
        """The manifest digest of ``path:tag`` in the registry, None when it is not there."""
        try:
            conn = self._connection()
            conn.request("HEAD", f"/v2/{path}/manifests/{tag}", headers={"Accept": _MANIFEST_TYPES})
            response = conn.getresponse()
            digest = response.getheader("Docker-Content-Digest")
            conn.close()
        except OSError as exc:
            raise RegistryError(f"--vdbench-registry {self}: {exc.__class__.__name__}: {exc}") from None
        return digest if response.status == 200 and digest else None

    def push_once(self, client: Any, local_tag: str, lock_dir: Path) -> tuple[str, bool]:
        """(``HOST:PORT/path@sha256:...``, pushed now?) for the local image ``local_tag``."""
        from filelock import FileLock

        path, tag = self.repository(local_tag)
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"push-{re.sub(r'[^A-Za-z0-9.-]', '_', path)}-{tag}.lock")):
            digest = self.digest(path, tag)  # asked under the lock: another worker may just have pushed it
            pushed = digest is None
            if pushed:
                remote = f"{self.address}/{path}"
                client.images.get(local_tag).tag(remote, tag)
                for line in client.images.push(remote, tag, stream=True, decode=True):
                    if "error" in line:
                        raise RegistryError(f"push of {local_tag} to {self} failed: {line['error']}")
                digest = self.digest(path, tag)
                if digest is None:
                    raise RegistryError(f"push of {local_tag} to {self} reported success but {path}:{tag} is not there")
        return f"{self.address}/{path}@{digest}", pushed


def parse_registry(value: str) -> Registry:
    """``HOST:PORT[/prefix]`` → ``Registry``; argparse-style error naming the value otherwise."""
    match = _ADDRESS.match(value.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT[/prefix] (e.g. 127.0.0.1:5077 or registry.hpc:5000/team)")
    return Registry(match["host"], int(match["port"]), (match["prefix"] or "").strip("/"))
