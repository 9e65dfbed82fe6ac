"""A small deterministic, prompt-sensitive text-to-video generator in NumPy (shared by the protocol examples).

The prompt's bytes and the seed pick a background gradient and a few soft coloured blobs; each blob
moves on a straight line, so the video is smooth and moves. Same (prompt, seed) -> same bytes; a
different prompt -> a different video. Output: float32 [frames, 3, height, width] in [0, 1].
(containers/oip-example/toyvideo.py is the same file: each image's build context holds its own copy.)
"""

from __future__ import annotations

import zlib

import numpy as np

BLOBS = 3


def generate(prompt: str, seed: int, frames: int = 8, height: int = 32, width: int = 32) -> np.ndarray:
    """The video for (prompt, seed) as float32 [frames, 3, height, width] in [0, 1]."""
    if not (1 <= frames <= 256 and 1 <= height <= 1024 and 1 <= width <= 1024):
        raise ValueError(f"frames/height/width out of range: {frames}, {height}, {width}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(prompt.encode("utf-8"))])
    y = np.linspace(0.0, 1.0, height, dtype=np.float64)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float64)[None, :]
    top, bottom = rng.uniform(0.1, 0.5, 3), rng.uniform(0.1, 0.5, 3)
    background = top[:, None, None] * (1 - y) + bottom[:, None, None] * y + 0 * x
    colour = rng.uniform(0.3, 0.5, (BLOBS, 3))
    start = rng.uniform(0.2, 0.8, (BLOBS, 2))
    velocity = rng.uniform(-0.03, 0.03, (BLOBS, 2))
    radius = rng.uniform(0.12, 0.22, BLOBS)
    video = np.empty((frames, 3, height, width), dtype=np.float32)
    for t in range(frames):
        frame = background.copy()
        for b in range(BLOBS):
            cy, cx = start[b] + velocity[b] * t
            weight = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius[b] ** 2))
            frame += colour[b][:, None, None] * weight[None]
        video[t] = np.clip(frame, 0.0, 1.0)
    return video
