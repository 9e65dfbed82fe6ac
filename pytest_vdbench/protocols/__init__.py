"""Wire protocols: the native adapter API, Cog's HTTP server, the Open Inference Protocol v2.

A protocol is one :class:`ProtocolDescriptor`: its default port, health paths, how its server
starts in a container, and its client. Runtimes, ``vdbench compose`` and the container plan read
the descriptor (runtimes are handed the registry; they import no client); the generated tests
talk through ``client_for``. Adding a protocol is a module with a client (see
``base.ModelClient``) and a descriptor, registered through the ``pytest_vdbench_add_protocols``
hook (:mod:`pytest_vdbench.hookspecs`); a manifest then selects it with ``protocol: NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_vdbench.endpoint import Endpoint
from pytest_vdbench.manifest import Manifest
from pytest_vdbench.protocols.base import ModelClient, NotSupported

__all__ = [
    "ModelClient",
    "NotSupported",
    "ProtocolDescriptor",
    "ProtocolRegistry",
    "builtin_protocols",
    "client_for",
    "ready_probe",
]

ClientFactory = Callable[[Manifest, Endpoint, float], ModelClient]


def _no_env(manifest: Manifest, port: int) -> dict[str, str]:
    return {}


def _image_cmd(manifest: Manifest, listen: list[str]) -> list[str] | None:
    return None


@dataclass(frozen=True)
class ProtocolDescriptor:
    """Everything the harness knows about one wire protocol."""

    name: str
    #: the container port its server listens on unless the manifest's ``port`` says otherwise
    default_port: int
    live_path: str
    ready_path: str
    client: ClientFactory
    #: (manifest, listen args) -> the container's command; None keeps the image's CMD
    server_command: Callable[[Manifest, list[str]], list[str] | None] = _image_cmd
    #: (manifest, port) -> environment the server reads
    server_env: Callable[[Manifest, int], dict[str, str]] = _no_env
    #: can serve on a Unix socket (``sandbox: {network: none}``)
    unix_socket: bool = False
    #: has a fit call (tabular models)
    fit: bool = False
    #: a readiness answer's JSON field and the values that mean ready (None: HTTP 200 is ready)
    ready_json: tuple[str, tuple[str, ...]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def port(self, manifest: Manifest) -> int:
        return manifest.port or self.default_port

    def command(self, manifest: Manifest, listen: list[str]) -> list[str] | None:
        """The manifest's ``command`` if it sets one, else the protocol's server."""
        if manifest.command is not None:
            return list(manifest.command)
        return self.server_command(manifest, listen)


class ProtocolRegistry:
    """The protocols of this run: the built-ins plus those added through the hook."""

    def __init__(self) -> None:
        self._by_name: dict[str, ProtocolDescriptor] = {}

    def add(self, descriptor: ProtocolDescriptor) -> ProtocolDescriptor:
        if descriptor.name in self._by_name and self._by_name[descriptor.name] is not descriptor:
            raise ValueError(f"protocol {descriptor.name!r} is already registered")
        self._by_name[descriptor.name] = descriptor
        return descriptor

    def get(self, name: str) -> ProtocolDescriptor:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no protocol {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)


def _native_client(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.native import AdapterClient

    return AdapterClient(endpoint, timeout=timeout)


def _native_command(manifest: Manifest, listen: list[str]) -> list[str] | None:
    if manifest.adapter is None:  # the manifest requires one for native
        return None
    return ["python", "-m", "pytest_vdbench.adapter", "serve", manifest.adapter, *listen]


def _cog_client(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.cog import CogClient

    return CogClient(endpoint, timeout=timeout, options=manifest.cog)


def _cog_command(manifest: Manifest, listen: list[str]) -> list[str] | None:
    # Cog's own HTTP server: port from PORT, predictor from COG_PREDICT_TYPE_STUB
    return ["python", "-m", "cog.server.http", "--host", "0.0.0.0"]


def _cog_env(manifest: Manifest, port: int) -> dict[str, str]:
    env = {"PORT": str(port)}
    if manifest.adapter is not None:
        env["COG_PREDICT_TYPE_STUB"] = manifest.adapter
    return env


def _oip_client(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.oip import OipClient

    model = (manifest.oip.model if manifest.oip else None) or manifest.name
    return OipClient(endpoint, model=model, timeout=timeout, options=manifest.oip)


NATIVE = ProtocolDescriptor(
    "native", 8080, "/health/live", "/health/ready", _native_client, _native_command, unix_socket=True, fit=True
)
COG = ProtocolDescriptor(
    "cog", 5000, "/health-check", "/health-check", _cog_client, _cog_command, _cog_env, ready_json=("status", ("READY", "BUSY"))
)
#: the image's CMD starts the server (e.g. ``mlserver start``); its settings listen on 0.0.0.0 at the port
OIP_V2 = ProtocolDescriptor("oip-v2", 8080, "/v2/health/live", "/v2/health/ready", _oip_client)


def builtin_protocols() -> ProtocolRegistry:
    registry = ProtocolRegistry()
    for descriptor in (NATIVE, COG, OIP_V2):
        registry.add(descriptor)
    return registry


#: the registry ``client_for`` reads; the plugin adds hook-registered protocols at configure time
PROTOCOLS = builtin_protocols()


def client_for(
    manifest: Manifest, endpoint: Endpoint, *, timeout: float | None = None, registry: ProtocolRegistry | None = None
) -> ModelClient:
    """The client that speaks ``manifest.protocol`` to ``endpoint`` (``timeout``: default timeouts.generate)."""
    descriptor = (registry or PROTOCOLS).get(manifest.protocol)
    return descriptor.client(manifest, endpoint, manifest.timeouts.generate if timeout is None else timeout)


def ready_probe(
    manifest: Manifest, endpoint: Endpoint, registry: ProtocolRegistry | None = None
) -> Callable[..., tuple[int, dict[str, Any]]]:
    """What a runtime polls until the model is ready: the protocol client's ``ready(timeout=5.0)`` (total per probe)."""
    return client_for(manifest, endpoint, timeout=5.0, registry=registry).ready
