"""Weight-free video quality metrics on canonical videos (float32 ``[F, C, H, W]`` in [0, 1]).

In the spirit of VBench's dimensions, without their networks: each function is pure, documented
with its range and direction, and unit-tested on synthetic videos whose answer is known.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "dynamic_degree",
    "motion_smoothness",
    "prompt_sensitivity",
    "sharpness",
    "temporal_flicker",
    "to_canonical",
    "video_report",
]

Video = np.ndarray[Any, Any]


def to_canonical(video: Any) -> Video:
    """Validate and convert to float64 ``[F, C, H, W]`` in [0, 1].

    Accepts float ``[F, C, H, W]`` (C in 1..4) and uint8 ``[F, H, W, C]``.
    """
    array = np.asarray(video)
    if array.ndim != 4:
        raise ValueError(f"a video must have 4 dimensions, got shape {list(array.shape)}")
    if array.dtype == np.uint8:
        if array.shape[-1] not in (1, 3, 4):
            raise ValueError(f"uint8 videos are [frames, height, width, channels], got shape {list(array.shape)}")
        return array.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"videos are float32 [F, C, H, W] or uint8 [F, H, W, C], got dtype {array.dtype}")
    if array.shape[1] not in (1, 3, 4):
        raise ValueError(f"float videos are [frames, channels, height, width], got shape {list(array.shape)}")
    return array.astype(np.float64)


def _gray(video: Video) -> Video:
    v = to_canonical(video)
    return v[:, :3].mean(axis=1) if v.shape[1] >= 3 else v[:, 0]


def temporal_flicker(video: Any) -> float:
    """1 - mean absolute difference between consecutive frames. Range [0, 1]; higher is steadier.

    A static video scores 1; black/white alternation scores 0. One frame: 1 (nothing flickers).
    """
    v = to_canonical(video)
    if len(v) < 2:
        return 1.0
    return float(1.0 - np.abs(np.diff(v, axis=0)).mean())


def motion_smoothness(video: Any) -> float:
    """How well each middle frame is predicted by the mean of its neighbours. Range [0, 1]; higher is smoother.

    ``1 - mean|f[t] - (f[t-1] + f[t+1]) / 2|``: VBench's frame-interpolation idea with linear
    interpolation instead of a network. Under three frames: 1.
    """
    v = to_canonical(video)
    if len(v) < 3:
        return 1.0
    predicted = (v[:-2] + v[2:]) / 2.0
    return float(1.0 - np.abs(v[1:-1] - predicted).mean())


def _shift(a: Video, b: Video) -> tuple[float, float]:
    """Translation of ``b`` against ``a`` by phase correlation (pixels, sub-pixel by centroid)."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fb * np.conj(fa)
    norm = np.abs(cross)
    if norm.max() < 1e-12:
        return 0.0, 0.0
    corr = np.real(np.fft.ifft2(cross / np.maximum(norm, 1e-12)))
    h, w = corr.shape
    y, x = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy = y if y <= h // 2 else y - h
    dx = x if x <= w // 2 else x - w
    return float(dy), float(dx)


def dynamic_degree(video: Any) -> float:
    """Mean motion magnitude in pixels per frame (global translation by phase correlation). 0 = static.

    Higher means more motion; it is a dynamics measure, not better or worse by itself (VBench's
    "dynamic degree" flags videos that barely move). Frames with no content give 0. One frame: 0.
    """
    g = _gray(video)
    if len(g) < 2:
        return 0.0
    if float(np.abs(np.diff(g, axis=0)).max()) == 0.0:
        return 0.0
    mags = [float(np.hypot(*_shift(g[t], g[t + 1]))) for t in range(len(g) - 1)]
    # content that changes without translating (fades, new texture) still moves: add its share
    residual = float(np.abs(np.diff(g, axis=0)).mean())
    return float(np.mean(mags)) + residual


def sharpness(video: Any) -> float:
    """Mean variance of the 4-neighbour Laplacian per frame (gray). >= 0; higher is sharper.

    A constant video scores 0; blurring lowers it.
    """
    g = _gray(video)
    lap = -4 * g[:, 1:-1, 1:-1] + g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:]
    if lap.size == 0:
        return 0.0
    return float(lap.reshape(len(g), -1).var(axis=1).mean())


def prompt_sensitivity(a: Any, b: Any) -> float:
    """Mean absolute difference of two videos (same seed, different prompts). Range [0, 1]; 0 = prompt ignored."""
    va, vb = to_canonical(a), to_canonical(b)
    if va.shape != vb.shape:
        return 1.0
    return float(np.abs(va - vb).mean())


def video_report(video: Any) -> dict[str, float]:
    """Every single-video metric by name."""
    return {
        "temporal_flicker": temporal_flicker(video),
        "motion_smoothness": motion_smoothness(video),
        "dynamic_degree": dynamic_degree(video),
        "sharpness": sharpness(video),
    }
