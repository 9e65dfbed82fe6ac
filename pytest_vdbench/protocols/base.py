"""What the harness needs from a model server, whatever API it speaks (``ModelClient``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation
from pytest_vdbench.manifest import DeclaredRequirements

__all__ = ["ModelClient", "NotSupported", "declared_requirements"]


class ModelClient(Protocol):
    """The calls the generated tests make. ``native`` is :class:`pytest_vdbench.protocols.native.AdapterClient`.

    ``live``/``ready`` return (HTTP-like status, body) and raise OSError while nothing listens;
    ``ready`` answers 200 when ready (body ``setup_seconds`` when the server tells), 503 while
    loading and 500 with ``{"error": ...}`` when the model's setup failed (the harness then stops
    waiting and reports it). ``live_path``/``ready_path`` name what was asked, for messages. The
    other calls raise :class:`AdapterError` (:class:`NotSupported` when the protocol has no such call).
    """

    protocol: str
    endpoint: Endpoint
    live_path: str
    ready_path: str

    def live(self) -> tuple[int, dict[str, Any]]: ...

    def ready(self) -> tuple[int, dict[str, Any]]: ...

    def metadata(self) -> dict[str, Any]: ...

    def requirements(self) -> dict[str, Any]: ...

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None,
        params: Mapping[str, Any],
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Generation: ...

    def fit(
        self,
        table: np.ndarray[Any, Any],
        columns: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> float: ...


class NotSupported(AdapterError):
    """The protocol has no such call; the test that needs it skips with this message."""


def declared_requirements(protocol: str, key: str, declared: DeclaredRequirements | None) -> dict[str, Any]:
    """``requirements()`` of a protocol without a requirements endpoint: what the manifest declares.

    Raises :class:`NotSupported` (the test skips, saying nothing was checked) when it declares none.
    """
    if declared is None:
        raise NotSupported(
            f"not checked: the {protocol} protocol has no requirements endpoint and the manifest declares no "
            f"{key}.requirements (gpus, gpu_memory, memory, cpus) to check against resources"
        )
    return {
        **declared.model_dump(),
        "source": f"manifest {key}.requirements (the {protocol} protocol has no requirements endpoint)",
    }
