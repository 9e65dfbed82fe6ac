"""An MLServer model whose ``load()`` raises: MLServer then exits, and vdbench fails test_health with its log."""

from __future__ import annotations

from mlserver import MLModel


class BrokenToyVideo(MLModel):
    async def load(self) -> bool:
        raise FileNotFoundError("/weights/toyvideo.bin: the checkpoint is missing")
