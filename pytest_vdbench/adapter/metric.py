"""The scorer side of the SDK: ``MetricAdapter`` and the score records ``POST /v1/score`` returns.

A metric container is packaged like a model (a build context, a manifest with ``kind: metric``)
but serves ``POST /v1/score`` instead of ``/v1/generate``: the harness sends it the frames of every
generated video case and records the named scores it answers (README, "Metric containers").
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

from pytest_vdbench.adapter.base import ModelAdapter

DIRECTIONS = ("higher", "lower")


def score(value: float, range: Sequence[float] = (0.0, 1.0), direction: str = "higher") -> Dict[str, Any]:
    """One computed score: ``value`` within ``range``; ``direction`` says which way is better."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} must be one of {DIRECTIONS}")
    low, high = float(range[0]), float(range[1])
    return {"value": float(value), "range": [low, high], "direction": direction}


def not_computed(reason: str, range: Sequence[float] = (0.0, 1.0), direction: str = "higher") -> Dict[str, Any]:
    """A score the scorer could not compute, with the reason (e.g. ``missing /weights/x.pth``)."""
    record = score(0.0, range, direction)
    record["value"] = None
    record["error"] = f"not computed: {reason}"
    return record


def check_scores(scores: Any) -> Dict[str, Dict[str, Any]]:
    """Validate what :meth:`MetricAdapter.score` returned; raise ``ValueError`` naming the problem."""
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError(f"score() must return a non-empty mapping of name -> score record, got {scores!r}")
    out: Dict[str, Dict[str, Any]] = {}
    for name, record in scores.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"score name {name!r} must be a non-empty string")
        if not isinstance(record, Mapping) or "value" not in record:
            raise ValueError(f"score {name!r}: {record!r} is not a record from score() / not_computed()")
        value: Optional[Any] = record["value"]
        if value is None and not record.get("error"):
            raise ValueError(f"score {name!r} has no value and no error saying why")
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"score {name!r}: value {value!r} is not a number")
        if value is not None and not math.isfinite(float(value)):
            raise ValueError(f"the scorer returned {value!r} for {name} (a broken score is an error, never a number)")
        out[name] = dict(record)
    return out


class MetricAdapter(ModelAdapter):
    """Base class for a scorer behind ``POST /v1/score``.

    Build what the scorer needs in :meth:`load` (in the background before readiness, like a model)
    and return ``{name: score(...) or not_computed(...)}`` from :meth:`score`. Names are short
    (``temporal_flickering``): the harness records them under the manifest's namespace
    (``vbench.temporal_flickering``).
    """

    #: What the scorer measures: ``video`` scorers receive every generated video case.
    modality: str = "video"

    def score(self, frames: Any, prompt: str, **settings: Any) -> Mapping[str, Mapping[str, Any]]:
        """Score one video: ``frames`` as the model returned it (float32 ``[F, C, H, W]`` in [0, 1]
        or uint8 ``[F, H, W, C]``); ``settings`` holds the case's ``seed``, ``params`` and ``id``."""
        raise NotImplementedError(f"{type(self).__name__}.score() is not implemented")

    def generate(self, prompt: str, **params: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is a metric: it serves POST /v1/score, not /v1/generate")
