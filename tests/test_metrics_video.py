"""Video metrics on synthetic videos whose answers are known, including videos built to fail them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_vdbench.checks.metrics import MetricInfo, ScoreContext, builtin_registry
from pytest_vdbench.checks.metrics.video import (
    dynamic_degree,
    motion_smoothness,
    prompt_sensitivity,
    sharpness,
    temporal_flicker,
    to_canonical,
    video_report,
)
from pytest_vdbench.manifest import Case

F, H, W = 8, 32, 32
Video = np.ndarray[Any, Any]


def pan(speed: float, frames: int = F) -> Video:
    """A horizontal sine grating moving ``speed`` pixels per frame (periodic, so no edge effects)."""
    x = np.arange(W)
    v = np.zeros((frames, 3, H, W), np.float32)
    for t in range(frames):
        v[t] = 0.5 + 0.4 * np.sin(2 * np.pi * (x[None, None, :] - speed * t) / W)
    return v


def texture(seed: int = 0, size: int = 64) -> Video:
    """A smooth random 2-D texture in [0, 1]."""
    base = np.random.default_rng(seed).random((size, size))
    for _ in range(3):
        base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, (1, 1), (0, 1))) / 4
    out: Video = (base - base.min()) / (base.max() - base.min())
    return out


def flicker() -> Video:
    v = np.zeros((F, 3, H, W), np.float32)
    v[::2] = 1.0
    return v


def static() -> Video:
    return np.repeat(pan(0, 1), F, axis=0)


def constant() -> Video:
    return np.full((F, 3, H, W), 0.5, np.float32)


def blur(v: Video) -> Video:
    return (v + np.roll(v, 1, axis=2) + np.roll(v, 1, axis=3) + np.roll(v, (1, 1), axis=(2, 3))) / 4


def test_static_video_has_no_dynamics_and_no_flicker() -> None:
    assert dynamic_degree(static()) == 0.0
    assert temporal_flicker(static()) == 1.0
    assert motion_smoothness(static()) == 1.0


def test_flicker_scores_worse_than_a_smooth_pan() -> None:
    assert temporal_flicker(flicker()) == pytest.approx(0.0)
    assert motion_smoothness(flicker()) == pytest.approx(0.0)
    assert temporal_flicker(pan(1)) > 0.9 > temporal_flicker(flicker())
    assert motion_smoothness(pan(1)) > 0.99 > motion_smoothness(flicker())


@pytest.mark.parametrize("speed", [0.5, 1, 1.5, 2, 3, 5])
def test_dynamic_degree_recovers_the_shift(speed: float) -> None:
    assert dynamic_degree(pan(speed)) == pytest.approx(speed, abs=0.1)


def test_faster_pan_is_more_dynamic() -> None:
    assert dynamic_degree(pan(2)) > dynamic_degree(pan(1)) > dynamic_degree(pan(0)) == 0.0


def test_dynamic_degree_recovers_a_diagonal_shift_at_full_resolution_scale() -> None:
    # 320 x 320 frames are downsampled x3 for the search; the answer is still in input pixels
    big = np.kron(texture(1), np.ones((5, 5)))
    video = np.stack([np.roll(big, (3 * t, 6 * t), (0, 1)) for t in range(6)])[:, None].astype(np.float32)
    assert dynamic_degree(video) == pytest.approx(np.hypot(3, 6), rel=0.1)


def test_shuffled_frames_are_caught_by_smoothness() -> None:
    ordered = pan(1)
    shuffled = ordered[[0, 4, 1, 5, 2, 6, 3, 7]]
    assert motion_smoothness(shuffled) < motion_smoothness(ordered) - 0.1
    assert temporal_flicker(shuffled) < temporal_flicker(ordered)


def test_blur_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    noisy = rng.random((F, 3, H, W)).astype(np.float32)
    assert sharpness(blur(noisy)) < sharpness(noisy) / 2
    assert sharpness(blur(blur(pan(1)))) < sharpness(pan(1))
    assert 0 < sharpness(noisy) <= 16


def test_constant_video_fails_dynamics_and_sharpness() -> None:
    assert dynamic_degree(constant()) == 0.0
    assert sharpness(constant()) == 0.0


def test_prompt_sensitivity() -> None:
    assert prompt_sensitivity(pan(1), pan(1)) == 0.0
    assert prompt_sensitivity(pan(1), pan(2)) > 0.05
    assert prompt_sensitivity(np.zeros((F, 3, H, W), np.float32), np.ones((F, 3, H, W), np.float32)) == 1.0
    with pytest.raises(ValueError, match=r"same shape, got \[8, 3, 32, 32\] and \[4, 3, 32, 32\]"):
        prompt_sensitivity(pan(1), pan(1, frames=4))


def test_uint8_nhwc_equals_float_nchw() -> None:
    u8 = np.round(pan(1.5) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    v = u8.transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(to_canonical(u8), v)
    a, b = video_report(v), video_report(u8)
    assert a == pytest.approx(b, abs=1e-9)
    assert prompt_sensitivity(u8, v) == 0.0


def test_gray_and_rgba_videos_are_accepted() -> None:
    gray = pan(1)[:, :1]
    rgba = np.concatenate([pan(1), np.ones((F, 1, H, W), np.float32)], axis=1)
    assert video_report(gray) == pytest.approx(video_report(pan(1)))
    assert video_report(rgba) == video_report(pan(1))  # alpha is ignored


def test_equal_luminance_colour_motion_is_seen() -> None:
    # three gratings a third of a period apart: the gray mix is a constant 0.5, the colours still move
    x = np.arange(W, dtype=np.float32)
    c = np.arange(3, dtype=np.float32)[:, None, None]
    video = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * ((x - 2 * t) / W + c / 3)) * np.ones((3, H, W)) for t in range(F)])
    np.testing.assert_allclose(video.mean(axis=1), 0.5, atol=1e-6)
    assert dynamic_degree(video) == pytest.approx(2.0, abs=0.1)
    assert sharpness(video) > 0


@pytest.mark.parametrize("frames", [1, 2])
def test_short_videos_are_well_defined(frames: int) -> None:
    report = video_report(pan(1, frames=frames))
    assert report["temporal_flicker"] == (1.0 if frames == 1 else pytest.approx(temporal_flicker(pan(1)[:2])))
    assert report["motion_smoothness"] == 1.0
    assert report["dynamic_degree"] == (0.0 if frames == 1 else pytest.approx(1.0))
    assert report["sharpness"] == pytest.approx(sharpness(pan(1)[:frames]))


def test_tiny_frames_are_well_defined() -> None:
    tiny = np.random.default_rng(0).random((4, 3, 2, 2)).astype(np.float32)
    report = video_report(tiny)
    assert report["sharpness"] == 0.0
    assert all(np.isfinite(value) for value in report.values())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((3, 32, 32)), r"must have 4 dimensions.*got shape \[3, 32, 32\]"),
        (np.zeros((3, 7, 32, 32), np.float32), r"float videos are \[frames, channels, height, width\].*\[3, 7, 32, 32\]"),
        (np.zeros((3, 32, 32, 3), np.float32), r"for \[F, H, W, C\] pass video.transpose\(0, 3, 1, 2\)"),
        (np.zeros((3, 32, 32, 7), np.uint8), r"uint8 videos are \[frames, height, width, channels\].*\[3, 32, 32, 7\]"),
        (np.zeros((3, 3, 32, 32), np.int32), "got dtype int32"),
        (np.zeros((0, 3, 32, 32), np.float32), r"at least one frame and one pixel, got shape \[0, 3, 32, 32\]"),
    ],
)
def test_bad_inputs_say_what_is_wrong(bad: Video, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_canonical(bad)
    with pytest.raises(ValueError, match=message):
        video_report(bad)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (pan(1) * 2 - 1, r"must lie in \[0, 1\], got values in \[-0.8, 0.8\]; rescale \[-1, 1\] outputs"),
        (np.where(pan(1) > 0.5, np.nan, pan(1)).astype(np.float32), r"\d+ NaN and 0 inf values"),
    ],
)
def test_out_of_range_values_are_rejected_by_the_metrics(values: Video, message: str) -> None:
    to_canonical(values)  # the layout is fine; only scoring needs the values in [0, 1]
    for metric in (temporal_flicker, motion_smoothness, dynamic_degree, sharpness):
        with pytest.raises(ValueError, match=message):
            metric(values)


def test_registry_declares_every_builtin_once() -> None:
    registry = builtin_registry()
    video = ["dynamic_degree", "motion_smoothness", "prompt_sensitivity", "sharpness", "temporal_flicker"]
    assert registry.names("video") == video
    assert {"column_shapes", "column_pair_trends", "tstr_accuracy", "tstr_ratio"} <= set(registry.names("tabular"))
    info = registry.info("temporal_flicker")
    assert info is not None and info.better == "higher" and info.range == (0, 1) and info.low_means
    assert registry.directions()["dynamic_degree"] == 0  # motion is not quality: shown, never flagged
    assert registry.info("prompt_sensitivity").needs == "prompt"  # type: ignore[union-attr]
    assert registry.info("clip_score") is None


def test_a_scorer_plugs_in_and_duplicate_names_are_rejected() -> None:
    registry = builtin_registry()

    class Brightness:
        metrics = (MetricInfo("mean_brightness", "video", (0, 1), "none"),)

        def unavailable(self) -> str | None:
            return None

        def score(self, ctx: ScoreContext) -> dict[str, float]:
            return {"mean_brightness": float(to_canonical(ctx.output).mean())}

    registry.add(Brightness())
    assert "mean_brightness" in registry.names("video")
    case = Case(id="c", prompt="p", seed=0)
    scores, not_run = registry.score("video", ScoreContext(case=case, output=constant(), generate=lambda p: constant()))
    assert scores["mean_brightness"] == pytest.approx(0.5) and scores["temporal_flicker"] == 1.0 and not not_run
    with pytest.raises(ValueError, match="'mean_brightness' is already registered"):
        registry.add(Brightness())


def test_an_unavailable_scorer_is_reported_not_zero() -> None:
    registry = builtin_registry()

    class NeedsWeights:
        metrics = (MetricInfo("needs_weights", "video", (0, 1), "higher"),)

        def unavailable(self) -> str | None:
            return "weights openai/clip not found in the Hugging Face cache"

        def score(self, ctx: ScoreContext) -> dict[str, float]:
            raise AssertionError("never called when unavailable")

    registry.add(NeedsWeights())
    case = Case(id="c", prompt="p", seed=0)
    scores, not_run = registry.score("video", ScoreContext(case=case, output=constant(), generate=lambda p: constant()))
    assert "needs_weights" not in scores
    assert not_run == {"needs_weights": "weights openai/clip not found in the Hugging Face cache"}
