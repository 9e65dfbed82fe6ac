"""A Cog predictor as Replicate users write them: ``cog.BasePredictor`` with typed ``Input``s.

It runs unchanged under ``python -m cog.server.http`` (no vdbench adapter): vdbench maps a case's
prompt, seed and params onto these inputs and decodes the returned file (a data URL) to a tensor.
"""

from __future__ import annotations

import tempfile

import numpy as np
import toyvideo
from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def setup(self) -> None:
        # stands in for loading weights: a warm-up call, so predict() pays no first-call cost
        toyvideo.generate("warm-up", 0, frames=2, height=4, width=4)

    def predict(
        self,
        prompt: str = Input(description="what the video shows", default=""),
        seed: int = Input(description="random seed", default=0),
        frames: int = Input(description="number of frames", default=8, ge=1, le=256),
        height: int = Input(description="frame height", default=32, ge=1, le=1024),
        width: int = Input(description="frame width", default=32, ge=1, le=1024),
        format: str = Input(description="file format of the output", default="npy", choices=["npy", "gif"]),
    ) -> Path:
        video = toyvideo.generate(prompt, seed, frames=frames, height=height, width=width)
        out = Path(tempfile.mkdtemp()) / f"video.{format}"
        if format == "npy":
            np.save(out, video)  # float32 [frames, 3, height, width], exact
        else:
            from PIL import Image

            pixels = (video.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
            images = [Image.fromarray(frame) for frame in pixels]
            images[0].save(out, save_all=True, append_images=images[1:], duration=100, loop=0)
        return out
