"""Weight-free video quality metrics on canonical videos (float32 ``[F, C, H, W]`` in [0, 1]).

In the spirit of VBench's dimensions, without their networks: each function is a pure function of
numpy arrays, documented with its range and which direction is better, and unit-tested on synthetic
videos whose answer is known. Every metric accepts what :func:`to_canonical` accepts, requires
finite values in [0, 1] (ValueError otherwise) and ignores an alpha channel.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "flicker",
    "motion",
    "prompt_sensitivity",
    "sharpness",
    "smoothness",
    "to_canonical",
    "to_frames",
    "video_report",
]

FloatArray = npt.NDArray[np.float64]
Video = npt.NDArray[np.float32]

CHANNELS = (1, 3, 4)
#: Block matching for :func:`motion`: frames are area-downsampled until the longer side is
#: at most FLOW_SIDE pixels, then each BLOCK x BLOCK block is searched within +-RADIUS pixels.
FLOW_SIDE = 128
BLOCK = 8
RADIUS = 6
_RANGE_SLACK = 1e-6  # float rounding in an adapter's own rescale is not an out-of-range video


def to_canonical(video: npt.ArrayLike) -> Video:
    """Validate ``video`` and return it as float32 ``[frames, channels, height, width]`` in [0, 1].

    Accepts float ``[F, C, H, W]`` (returned as float32, values unchanged) and uint8
    ``[F, H, W, C]`` (divided by 255), with C in 1, 3 or 4 and F, H, W at least 1. Anything else
    raises ValueError naming the shape or dtype. Values are not range-checked here (see the metrics).
    """
    array = np.asarray(video)
    if array.ndim != 4:
        raise ValueError(
            f"a video must have 4 dimensions (float32 [frames, channels, height, width] or "
            f"uint8 [frames, height, width, channels]), got shape {list(array.shape)}"
        )
    if array.dtype == np.uint8:
        if array.shape[-1] not in CHANNELS:
            raise ValueError(
                f"uint8 videos are [frames, height, width, channels] with 1, 3 or 4 channels, got shape {list(array.shape)}"
            )
        array = array.transpose(0, 3, 1, 2)
        out: Video = array.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(array.dtype, np.floating):
        if array.shape[1] not in CHANNELS:
            hint = "; for [F, H, W, C] pass video.transpose(0, 3, 1, 2)" if array.shape[-1] in CHANNELS else ""
            raise ValueError(
                f"float videos are [frames, channels, height, width] with 1, 3 or 4 channels, got shape {list(array.shape)}{hint}"
            )
        out = array.astype(np.float32, copy=False)
    else:
        raise ValueError(f"videos are float32 [F, C, H, W] or uint8 [F, H, W, C], got dtype {array.dtype}")
    if 0 in out.shape:
        raise ValueError(f"a video needs at least one frame and one pixel, got shape {list(array.shape)}")
    return out


def _checked(video: npt.ArrayLike) -> Video:
    """:func:`to_canonical` minus any alpha channel, plus the checks a metric needs (finite, in [0, 1])."""
    v = to_canonical(video)
    if not np.isfinite(v).all():
        raise ValueError(f"the video has {int(np.isnan(v).sum())} NaN and {int(np.isinf(v).sum())} inf values")
    low, high = float(v.min()), float(v.max())
    if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
        raise ValueError(
            f"float videos must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
            "rescale [-1, 1] outputs with (video + 1) / 2, or clip with np.clip(video, 0, 1)"
        )
    return v[:, :3]


def flicker(video: npt.ArrayLike) -> float:
    """Steadiness: ``1 - mean|f[t+1] - f[t]|`` over all pixels and channels (float frames).

    VBench's ``temporal_flickering`` is the same formula on 8-bit frames read back from a video file
    (``(255 - mean|diff|) / 255``), so the two differ by quantisation (and by the codec, for lossy
    files): this one is not called by VBench's name; VBench's own value is
    ``vbench.temporal_flickering`` (``--vdbench-metrics=vbench``; calibration in the README).

    Range [0, 1]; higher is steadier. A static video scores exactly 1, black/white alternation 0.
    A single frame scores 1 (nothing can flicker).
    """
    v = _checked(video)
    if len(v) < 2:
        return 1.0
    return float(1.0 - np.abs(np.diff(v, axis=0)).mean(dtype=np.float64))


def smoothness(video: npt.ArrayLike) -> float:
    """How well each middle frame is predicted by the average of its neighbours.

    ``1 - mean|f[t] - (f[t-1] + f[t+1]) / 2|`` for t = 1 .. F-2: VBench's frame-interpolation idea
    with linear interpolation in place of its AMT network (so not VBench's ``motion_smoothness``). Range [0, 1]; higher is
    smoother. Static video and linear fades score 1, a smooth pan close to 1, shuffled frames
    lower, black/white alternation 0. Under three frames there is no middle frame: 1.
    """
    v = _checked(video)
    if len(v) < 3:
        return 1.0
    predicted = (v[:-2] + v[2:]) / np.float32(2.0)
    return float(1.0 - np.abs(v[1:-1] - predicted).mean(dtype=np.float64))


def _downsample(frames: Video) -> tuple[FloatArray, int]:
    """Area-average ``[F, C, H, W]`` by an integer factor until the longer side is at most FLOW_SIDE.

    Returns float64 frames and the factor.
    """
    f, c, h, w = frames.shape
    s = max(1, math.ceil(max(h, w) / FLOW_SIDE))
    hs, ws = h // s, w // s
    if s == 1 or hs == 0 or ws == 0:  # small, or a thin strip: search it at full resolution
        return frames.astype(np.float64), 1
    small: FloatArray = frames[..., : hs * s, : ws * s].reshape(f, c, hs, s, ws, s).mean(axis=(3, 5), dtype=np.float64)
    return small, s


def _block_motion(frames: FloatArray) -> FloatArray:
    """Per-block displacement magnitude (pixels) between consecutive frames: ``[F-1, blocks]``.

    Exhaustive block matching on the mean squared difference over the block's pixels and channels,
    with parabolic sub-pixel refinement. Ties go to the shortest displacement, so flat blocks and
    unchanged frames give exactly 0.
    """
    _, c, h, w = frames.shape
    r = min(RADIUS, min(h, w) // 4)
    b = min(BLOCK, min(h, w) - 2 * r)
    ny, nx = (h - 2 * r) // b, (w - 2 * r) // b
    pairs = len(frames) - 1
    span_y, span_x = ny * b, nx * b
    prev, nxt = frames[:-1], frames[1:]
    target = nxt[..., r : r + span_y, r : r + span_x].reshape(pairs, c, ny, b, nx, b)
    n = 2 * r + 1
    cost = np.empty((n, n, pairs, ny, nx))
    for i in range(n):
        for j in range(n):
            cand = prev[..., i : i + span_y, j : j + span_x].reshape(pairs, c, ny, b, nx, b)
            cost[i, j] = ((target - cand) ** 2).mean(axis=(1, 3, 5))
    offsets = np.arange(n) - r
    length = np.hypot(offsets[:, None], offsets[None, :])
    flat = (cost + 1e-12 * length[:, :, None, None, None]).reshape(n * n, -1)
    best = flat.argmin(axis=0)
    bi, bj = np.divmod(best, n)
    cols = np.arange(flat.shape[1])
    raw = cost.reshape(n * n, -1)
    c0 = raw[best, cols]

    def refine(index: npt.NDArray[np.intp], step: int) -> FloatArray:
        # a parabola through the costs either side of the best integer shift; skipped at the search
        # border, where the cost is flat, and on exact matches (a static block stays exactly 0)
        inside = (index > 0) & (index < n - 1)
        lo = raw[np.where(inside, best - step, best), cols]
        hi = raw[np.where(inside, best + step, best), cols]
        curve = lo - 2 * c0 + hi
        ok = inside & (curve > 1e-12) & (c0 > 1e-12)
        delta: FloatArray = np.where(ok, (lo - hi) / (2 * np.where(ok, curve, 1.0)), 0.0)
        return np.clip(delta, -0.5, 0.5)

    dy = offsets[bi] + refine(bi, n)
    dx = offsets[bj] + refine(bj, 1)
    magnitude: FloatArray = np.hypot(dy, dx).reshape(pairs, ny * nx)
    return magnitude


def motion(video: npt.ArrayLike) -> float:
    """Mean optical-flow magnitude in pixels per frame, by block matching (numpy, no flow network).

    The colour channels (all of them, not a gray mix, so equal-luminance patterns still move; alpha
    is ignored) are area-downsampled until the longer side is at most FLOW_SIDE (128)
    pixels; every BLOCK x BLOCK block of frame t+1 is matched in frame t within +-RADIUS pixels at
    that scale (so speeds above RADIUS x the downsampling factor are under-counted); the score is
    the mean displacement over blocks and frame pairs, in pixels of the input. Range [0, inf);
    0 = static, higher = more motion. It measures dynamics, not quality: like VBench's
    ``dynamic_degree`` (RAFT flow, thresholded to a 0/1 per video: a different number) it catches
    videos that barely move, so set a lower bound. Brightness changes without
    displacement (fades, flicker) and textureless regions count as no motion. One frame: 0.
    """
    v = _checked(video)
    if len(v) < 2 or not np.any(v[1:] != v[:-1]):
        return 0.0
    small, scale = _downsample(v)
    if min(small.shape[2:]) < 2:
        return 0.0
    return float(_block_motion(small).mean() * scale)


def sharpness(video: npt.ArrayLike) -> float:
    """Variance of the 4-neighbour Laplacian per frame and colour channel, averaged over both.

    Every colour channel is used, so edges between colours of equal brightness count. Range
    [0, 16] for videos in [0, 1]; higher is sharper. A constant video scores 0 and blurring lowers
    the score; frames under 3 x 3 pixels have no interior and score 0.
    """
    v = _checked(video)
    if v.shape[2] < 3 or v.shape[3] < 3:
        return 0.0
    per_frame = []
    for frame in v:  # one frame at a time keeps the float64 copy small
        g = frame.astype(np.float64)
        lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4 * g[:, 1:-1, 1:-1]
        per_frame.append(lap.reshape(len(g), -1).var(axis=1).mean())
    return float(np.mean(per_frame))


def prompt_sensitivity(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean absolute difference between two videos generated with the same seed and different prompts.

    Range [0, 1] (values are in [0, 1], so the mean difference is already normalised); 0 = identical,
    i.e. the model ignored the prompt. Higher means the output follows the prompt more; it says
    nothing about whether it follows it well. The videos must have the same canonical shape.
    """
    va, vb = _checked(a), _checked(b)
    if va.shape != vb.shape:
        raise ValueError(
            f"prompt_sensitivity compares videos of the same shape, got {list(va.shape)} and {list(vb.shape)} "
            "(canonical [F, C, H, W])"
        )
    return float(np.abs(va - vb).mean(dtype=np.float64))


def video_report(video: npt.ArrayLike) -> dict[str, float]:
    """Every single-video metric by name: flicker, smoothness, motion, sharpness."""
    v = _checked(video)
    return {
        "flicker": flicker(v),
        "smoothness": smoothness(v),
        "motion": motion(v),
        "sharpness": sharpness(v),
    }


def to_frames(video: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Canonical video (float [F, C, H, W] in [0, 1] or uint8 [F, H, W, C]) -> uint8 [F, H, W, 3]."""
    v = to_canonical(video)[:, :3]
    if v.shape[1] == 1:
        v = np.repeat(v, 3, axis=1)
    frames: npt.NDArray[np.uint8] = (np.clip(np.nan_to_num(v), 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return frames
