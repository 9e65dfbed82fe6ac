"""Video metrics on synthetic videos whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_vdbench.metrics import available_metrics, get_metric
from pytest_vdbench.metrics.video import (
    dynamic_degree,
    motion_smoothness,
    prompt_sensitivity,
    sharpness,
    temporal_flicker,
    to_canonical,
    video_report,
)

F, H, W = 8, 32, 32


def pan(speed: int, frames: int = F) -> np.ndarray:
    x = np.arange(W)
    v = np.zeros((frames, 3, H, W), np.float32)
    for t in range(frames):
        v[t] = 0.5 + 0.4 * np.sin(2 * np.pi * (x[None, None, :] - speed * t) / W)
    return v


def flicker() -> np.ndarray:
    v = np.zeros((F, 3, H, W), np.float32)
    v[::2] = 1.0
    return v


def static() -> np.ndarray:
    return np.repeat(pan(0, 1), F, axis=0)


def test_static_video_has_no_dynamics_and_no_flicker() -> None:
    assert dynamic_degree(static()) == 0.0
    assert temporal_flicker(static()) == 1.0
    assert motion_smoothness(static()) == 1.0


def test_flicker_scores_worse_than_a_smooth_pan() -> None:
    assert temporal_flicker(flicker()) == pytest.approx(0.0)
    assert temporal_flicker(pan(1)) > 0.9 > temporal_flicker(flicker())
    assert motion_smoothness(pan(1)) > 0.99 > motion_smoothness(flicker())


def test_dynamic_degree_recovers_the_shift() -> None:
    assert dynamic_degree(pan(1)) == pytest.approx(1.0, abs=0.1)
    assert dynamic_degree(pan(2)) == pytest.approx(2.0, abs=0.15)
    assert dynamic_degree(pan(2)) > dynamic_degree(pan(1)) > 0


def test_shuffled_frames_are_caught_by_smoothness() -> None:
    ordered = pan(1)
    shuffled = ordered[[0, 4, 1, 5, 2, 6, 3, 7]]
    assert motion_smoothness(shuffled) < motion_smoothness(ordered) - 0.1


def test_blur_lowers_sharpness_and_constant_is_zero() -> None:
    rng = np.random.default_rng(0)
    noisy = rng.random((F, 3, H, W)).astype(np.float32)
    blurred = (noisy + np.roll(noisy, 1, axis=2) + np.roll(noisy, 1, axis=3) + np.roll(noisy, (1, 1), axis=(2, 3))) / 4
    assert sharpness(blurred) < sharpness(noisy) / 2
    assert sharpness(np.full((F, 3, H, W), 0.5, np.float32)) == 0.0
    assert dynamic_degree(np.full((F, 3, H, W), 0.5, np.float32)) == 0.0


def test_prompt_sensitivity() -> None:
    assert prompt_sensitivity(pan(1), pan(1)) == 0.0
    assert prompt_sensitivity(pan(1), pan(2)) > 0.05


def test_uint8_nhwc_equals_float_nchw() -> None:
    v = (np.round(pan(1) * 255) / 255).astype(np.float32)
    u8 = np.round(v * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    a, b = video_report(v), video_report(u8)
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-6)


def test_one_frame_is_well_defined() -> None:
    one = pan(1, frames=1)
    assert video_report(one) == {
        "temporal_flicker": 1.0,
        "motion_smoothness": 1.0,
        "dynamic_degree": 0.0,
        "sharpness": sharpness(one),
    }


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((3, 32, 32)), "must have 4 dimensions"),
        (np.zeros((3, 7, 32, 32), np.float32), "float videos are"),
        (np.zeros((3, 32, 32, 7), np.uint8), "uint8 videos are"),
        (np.zeros((3, 3, 32, 32), np.int32), "got dtype int32"),
    ],
)
def test_bad_inputs_say_what_is_wrong(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_canonical(bad)


def test_registry_has_the_builtins_and_rejects_duplicates() -> None:
    assert {"temporal_flicker", "dynamic_degree"} <= set(available_metrics())
    assert get_metric("temporal_flicker")(static()) == 1.0
    with pytest.raises(KeyError, match="no metric 'clip_score'"):
        get_metric("clip_score")
