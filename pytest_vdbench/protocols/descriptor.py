"""What a container needs to know about a protocol: its port, health paths, server command and env.

One ``ProtocolDescriptor`` per protocol, read by ``runtime/plan.py`` (and through it by the Docker
and Slurm runtimes, ``vdbench compose`` and ``vdbench k8s``). It holds no client: the clients live
beside it (``protocols/native.py``, ``cog.py``, ``oip.py``) and only the harness's side uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pytest_vdbench.manifest import DEFAULT_PORTS, Manifest

__all__ = ["DESCRIPTORS", "ProtocolDescriptor", "descriptor_for"]


@dataclass(frozen=True)
class ProtocolDescriptor:
    """A protocol as a container sees it.

    ``ready_statuses``: the JSON ``status`` values of a 200 readiness answer that mean ready (Cog
    answers 200 while ``STARTING`` too); empty when any 200 means ready. ``command`` gives the
    server's argv for the manifest and the listen arguments (None: the image's CMD starts it);
    ``env`` the environment the server reads for the manifest and port. ``unix_socket``: whether
    the server can listen on a Unix socket (the ``network: none`` sandbox).
    """

    name: str
    default_port: int
    live_path: str
    ready_path: str
    command: Callable[[Manifest, Sequence[str]], list[str] | None]
    env: Callable[[Manifest, int], dict[str, str]]
    ready_statuses: tuple[str, ...] = ()
    unix_socket: bool = False


def _native_command(manifest: Manifest, listen: Sequence[str]) -> list[str] | None:
    if manifest.adapter is None:  # the manifest requires one for native; keep the image's CMD otherwise
        return None
    return ["python", "-m", "pytest_vdbench.adapter", "serve", manifest.adapter, *listen]


def _cog_command(manifest: Manifest, listen: Sequence[str]) -> list[str] | None:
    # Cog's own HTTP server: port from PORT, predictor from COG_PREDICT_TYPE_STUB
    return ["python", "-m", "cog.server.http", "--host", "0.0.0.0"]


def _cog_env(manifest: Manifest, port: int) -> dict[str, str]:
    env = {"PORT": str(port)}
    if manifest.adapter is not None:
        env["COG_PREDICT_TYPE_STUB"] = manifest.adapter
    return env


def _no_env(manifest: Manifest, port: int) -> dict[str, str]:
    return {}


def _image_cmd(manifest: Manifest, listen: Sequence[str]) -> list[str] | None:
    return None  # e.g. `mlserver start`, whose settings listen on 0.0.0.0 at the port


DESCRIPTORS: Mapping[str, ProtocolDescriptor] = {
    "native": ProtocolDescriptor(
        "native", DEFAULT_PORTS["native"], "/health/live", "/health/ready", _native_command, _no_env, unix_socket=True
    ),
    "cog": ProtocolDescriptor(
        "cog", DEFAULT_PORTS["cog"], "/health-check", "/health-check", _cog_command, _cog_env, ready_statuses=("READY", "BUSY")
    ),
    "oip-v2": ProtocolDescriptor("oip-v2", DEFAULT_PORTS["oip-v2"], "/v2/health/live", "/v2/health/ready", _image_cmd, _no_env),
}


def descriptor_for(name: str) -> ProtocolDescriptor:
    """The descriptor of protocol ``name``; KeyError names the known protocols."""
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r} (known: {', '.join(sorted(DESCRIPTORS))})") from None
