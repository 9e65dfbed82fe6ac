"""Quality metrics: pure functions of arrays, plus a registry where heavier metrics plug in.

Weight-free metrics live in :mod:`.video` and :mod:`.tabular`; the video ones are registered here
under their function names. Metrics that need weights (CLIP score, VBench dimensions such as
subject consistency or aesthetic quality) are not computed here and nothing pretends to: they plug
in from wherever their weights exist, e.g. a ``conftest.py`` or a plugin module, by registering an
object with a ``name`` and a ``__call__`` (the :class:`Metric` protocol)::

    class ClipScore:
        name = "clip_score"

        def __init__(self, prompt: str, weights: Path) -> None: ...

        def __call__(self, video, *, reference=None) -> float:
            return ...  # cosine similarity of frame and prompt embeddings


    if weights.exists():
        register_metric(ClipScore(prompt, weights))

Metrics take the canonical video (float32 ``[F, C, H, W]`` in [0, 1], see
:func:`.video.to_canonical`) and return a float; each documents its range and which direction is
better. A metric comparing two videos takes the second as ``reference``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy.typing as npt

__all__ = ["Metric", "available_metrics", "get_metric", "register_metric"]


class Metric(Protocol):
    """A quality metric: a name and a pure function of the video (and an optional reference video)."""

    name: str

    def __call__(self, video: npt.ArrayLike, *, reference: npt.ArrayLike | None = None) -> float: ...


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` under ``metric.name``; a name already taken raises ValueError. Returns ``metric``."""
    if metric.name in _REGISTRY:
        raise ValueError(f"metric {metric.name!r} is already registered ({_REGISTRY[metric.name]!r})")
    _REGISTRY[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``; KeyError listing the available names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; available: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def available_metrics() -> list[str]:
    """Names of the registered metrics, sorted."""
    return sorted(_REGISTRY)


class _Single:
    """A single-video function as a :class:`Metric` (it takes no reference)."""

    def __init__(self, name: str, fn: Callable[[npt.ArrayLike], float]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, video: npt.ArrayLike, *, reference: npt.ArrayLike | None = None) -> float:
        if reference is not None:
            raise ValueError(f"metric {self.name!r} scores one video and takes no reference")
        return self._fn(video)

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


class _Paired:
    """A two-video function as a :class:`Metric` (the reference is required)."""

    def __init__(self, name: str, fn: Callable[[npt.ArrayLike, npt.ArrayLike], float]) -> None:
        self.name = name
        self._fn = fn

    def __call__(self, video: npt.ArrayLike, *, reference: npt.ArrayLike | None = None) -> float:
        if reference is None:
            raise ValueError(f"metric {self.name!r} compares two videos: pass reference=<the other video>")
        return self._fn(video, reference)

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


def _register_builtins() -> None:
    from pytest_vdbench.checks.metrics import video

    for fn in (video.temporal_flicker, video.motion_smoothness, video.dynamic_degree, video.sharpness):
        register_metric(_Single(fn.__name__, fn))
    register_metric(_Paired("prompt_sensitivity", video.prompt_sensitivity))


_register_builtins()
