"""A Cog predictor that returns its video as an MP4 file, encoded with imageio (H.264 via ffmpeg).

Each frame is a soft blob drifting across a gradient whose colours follow the prompt and seed; the
encoder runs single-threaded so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import tempfile

import imageio.v3 as iio
import numpy as np
from cog import BasePredictor, Input, Path


def render(prompt: str, seed: int, frames: int, height: int, width: int) -> np.ndarray:
    """uint8 [frames, height, width, 3]: a blob moving smoothly over a prompt-coloured gradient."""
    digest = hashlib.sha256(f"{prompt}\0{seed}".encode()).digest()
    colour = np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float32) / 255.0
    rng = np.random.default_rng(int.from_bytes(digest[3:7], "little"))
    y0, x0 = rng.uniform(0.2, 0.8, size=2)
    dy, dx = rng.uniform(-0.04, 0.04, size=2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    out = np.empty((frames, height, width, 3), dtype=np.float32)
    for t in range(frames):
        cy, cx = y0 + dy * t, x0 + dx * t
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        base = 0.25 + 0.5 * (xx[..., None] * colour + yy[..., None] * (1 - colour))
        out[t] = np.clip(base * (1 - blob[..., None]) + blob[..., None], 0, 1)
    return (out * 255).round().astype(np.uint8)


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.encode(render("warm-up", 0, 2, 16, 16))  # the first ffmpeg call pays its start-up here

    @staticmethod
    def encode(video: np.ndarray) -> Path:
        out = Path(tempfile.mkdtemp()) / "video.mp4"
        iio.imwrite(out, video, extension=".mp4", fps=8, codec="libx264", quality=8, ffmpeg_params=["-threads", "1"])
        return out

    def predict(
        self,
        prompt: str = Input(description="what the video shows", default=""),
        seed: int = Input(description="random seed", default=0),
        frames: int = Input(description="number of frames", default=8, ge=1, le=256),
        height: int = Input(description="frame height (a multiple of 16)", default=32, ge=16, le=1024),
        width: int = Input(description="frame width (a multiple of 16)", default=32, ge=16, le=1024),
    ) -> Path:
        return self.encode(render(prompt, seed, frames, height, width))
