"""What the harness needs from a model server, whatever API it speaks (``ModelClient``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation
from pytest_vdbench.manifest import DeclaredRequirements

__all__ = ["AdapterError", "Generation", "ModelClient", "NotSupported", "declared_requirements", "server_time"]


#: the round trip may exceed the claimed compute by this much plus a share of itself and the
#: transfer at a slow loopback rate; beyond, the claim is impossible and the round trip is used
_SLACK_S = 0.5
_SLACK_SHARE = 0.25
_SLOW_BYTES_PER_S = 50e6


def server_time(claim: object, round_trip: float, nbytes: int, source: str) -> tuple[float, str | None]:
    """The seconds budgets use: the server's ``claim`` when it is possible, else the round trip with a note.

    Impossible: not a finite non-negative number, longer than the round trip, or so much shorter
    that the rest of the round trip cannot be transfer and scheduling.
    """
    try:
        value = float(claim) if isinstance(claim, (int, float, str)) and not isinstance(claim, bool) else math.nan
    except ValueError:
        value = math.nan
    shown = repr(claim)[:60]
    if not math.isfinite(value) or value < 0:
        return round_trip, f"{source} {shown} is not a duration: budgets use the {round_trip:.3f}s round trip"
    if value > round_trip + 0.01:
        return round_trip, f"{source} {shown} exceeds the {round_trip:.3f}s round trip: budgets use the round trip"
    if round_trip - value > _SLACK_S + _SLACK_SHARE * round_trip + nbytes / _SLOW_BYTES_PER_S:
        return round_trip, (
            f"{source} {shown} is implausibly short for a {round_trip:.3f}s round trip of {nbytes} bytes: "
            "budgets use the round trip"
        )
    return value, None


class ModelClient(Protocol):
    """The calls the generated tests make. ``native`` is :class:`pytest_vdbench.protocols.native.AdapterClient`.

    ``live``/``ready`` return (HTTP-like status, body) within ``timeout`` seconds in total and raise
    OSError while nothing listens (a TimeoutError when the answer does not come in time);
    ``ready`` answers 200 when ready (body ``setup_seconds`` when the server tells), 503 while
    loading and 500 with ``{"error": ...}`` when the model's setup failed (the harness then stops
    waiting and reports it). ``live_path``/``ready_path`` name what was asked, for messages. The
    other calls raise :class:`AdapterError` (:class:`NotSupported` when the protocol has no such call).
    """

    protocol: str
    endpoint: Endpoint
    live_path: str
    ready_path: str

    def live(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]: ...

    def ready(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]: ...

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
