"""A tiny metric container for the plugin's own tests, with switchable faults (``options: {fault}``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_vdbench.adapter import MetricAdapter, not_computed, score

FAULTS = ("none", "crash", "nan", "slow", "load_crash", "out_of_range")


class ToyScorer(MetricAdapter):
    """``steadiness`` = 1 - mean |frame difference| (float frames in [0, 1]); ``needs_weights`` is never computed."""

    def __init__(self, fault: str = "none", **options: Any) -> None:
        super().__init__(**options)
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; faults: {FAULTS}")
        self.fault = fault
        self.never = threading.Event()

    def load(self) -> None:
        if self.fault == "load_crash":
            raise RuntimeError("toy scorer cannot load its weights (on purpose)")

    def score(self, frames: Any, prompt: str, **settings: Any) -> Mapping[str, Mapping[str, Any]]:
        if self.fault == "crash":
            raise RuntimeError(f"toy scorer exploded on case {settings.get('id')} (on purpose)")
        if self.fault == "slow":
            self.never.wait(60)  # far past the manifest's timeouts.score
        video = np.asarray(frames, dtype=np.float64)
        steadiness = 1.0 - float(np.abs(np.diff(video, axis=0)).mean()) if len(video) > 1 else 1.0
        if self.fault == "nan":
            steadiness = float("nan")
        record = score(steadiness)
        if self.fault == "out_of_range":
            record["value"] = 7.0
        return {"steadiness": record, "needs_weights": not_computed("missing /weights/toy/w.pth")}
