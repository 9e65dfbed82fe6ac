"""Protocol clients: the native adapter API, Cog's HTTP server and the Open Inference Protocol v2.

``client_for(manifest, endpoint)`` picks the client for ``manifest.protocol``. Adding a protocol:
a module here with a client class (see ``base.ModelClient``), a line in ``_CLIENTS``, its name and
default port in ``manifest.ProtocolName``/``DEFAULT_PORTS``, and its ``descriptor.ProtocolDescriptor``
(health paths, start command, env) in ``descriptor.DESCRIPTORS``: the container plan, and through
it every runtime and exporter, reads only that.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_vdbench.manifest import Manifest
from pytest_vdbench.protocols.base import ModelClient, NotSupported
from pytest_vdbench.runtime import Endpoint

__all__ = ["ModelClient", "NotSupported", "client_for"]


def _native(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.native import AdapterClient

    return AdapterClient(endpoint, timeout=timeout)


def _cog(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.cog import CogClient

    return CogClient(endpoint, timeout=timeout, options=manifest.cog)


def _oip(manifest: Manifest, endpoint: Endpoint, timeout: float) -> ModelClient:
    from pytest_vdbench.protocols.oip import OipClient

    return OipClient(
        endpoint, model=(manifest.oip.model if manifest.oip else None) or manifest.name, timeout=timeout, options=manifest.oip
    )


_CLIENTS: dict[str, Callable[[Manifest, Endpoint, float], ModelClient]] = {"native": _native, "cog": _cog, "oip-v2": _oip}


def client_for(manifest: Manifest, endpoint: Endpoint, *, timeout: float | None = None) -> ModelClient:
    """The client that speaks ``manifest.protocol`` to ``endpoint`` (``timeout``: default timeouts.generate)."""
    return _CLIENTS[manifest.protocol](manifest, endpoint, manifest.timeouts.generate if timeout is None else timeout)
