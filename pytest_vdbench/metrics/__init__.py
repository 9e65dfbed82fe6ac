"""Quality metrics: pure functions of arrays, plus a registry where heavier metrics plug in.

Weight-free metrics live in :mod:`.video` and :mod:`.tabular`. Metrics that need weights (CLIP
score, VBench dimensions) register themselves with :func:`register_metric` where their weights are
available; nothing here pretends to compute them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

__all__ = ["Metric", "available_metrics", "get_metric", "register_metric"]


class Metric(Protocol):
    """A video metric: a name and a pure function of the canonical video (and an optional reference)."""

    name: str

    def __call__(self, video: np.ndarray[Any, Any], *, reference: np.ndarray[Any, Any] | None = None) -> float: ...


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` under ``metric.name`` (e.g. a CLIP score from a plugin whose weights are present)."""
    if metric.name in _REGISTRY:
        raise ValueError(f"metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; available: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def available_metrics() -> list[str]:
    return sorted(_REGISTRY)


class _Fn:
    def __init__(self, name: str, fn: Callable[[np.ndarray[Any, Any]], float]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, video: np.ndarray[Any, Any], *, reference: np.ndarray[Any, Any] | None = None) -> float:
        return self._fn(video)


def _register_builtins() -> None:
    from pytest_vdbench.metrics import video

    for name in ("temporal_flicker", "motion_smoothness", "dynamic_degree", "sharpness"):
        register_metric(_Fn(name, getattr(video, name)))


_register_builtins()
