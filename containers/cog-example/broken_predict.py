"""A Cog predictor whose ``setup()`` raises: vdbench must fail readiness with Cog's setup logs."""

from __future__ import annotations

from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def setup(self) -> None:
        print("loading weights from /weights/model.safetensors")
        raise FileNotFoundError("/weights/model.safetensors: the checkpoint is missing")

    def predict(self, prompt: str = Input(default="")) -> Path:  # pragma: no cover - never ready
        raise AssertionError("unreachable")
