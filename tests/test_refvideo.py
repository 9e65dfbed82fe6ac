"""The reference model (containers/refvideo) in-process: layout, range, determinism, conditioning."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

CONTEXT = Path(__file__).parent.parent / "containers" / "refvideo"
PROMPT = "a red fox running through snow"


@pytest.fixture(scope="module")
def model() -> Iterator[Any]:
    """The adapter, loaded as its container loads it (one torch thread: bit-identical outputs)."""
    import torch

    threads = torch.get_num_threads()
    sys.path.insert(0, str(CONTEXT))
    try:
        from refvideo import RefVideo

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VDBENCH_THREADS", "1")
            adapter = RefVideo()
            adapter.load()
        yield adapter
    finally:
        sys.path.remove(str(CONTEXT))
        sys.modules.pop("refvideo", None)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fox(model: Any) -> np.ndarray[Any, Any]:
    return np.asarray(model.generate(PROMPT, seed=0))


def test_layout_dtype_and_range(model: Any, fox: np.ndarray[Any, Any]) -> None:
    assert fox.shape == (8, 3, 32, 32)
    assert fox.dtype == np.float32
    assert np.isfinite(fox).all()
    assert fox.min() >= 0.0 and fox.max() <= 1.0
    assert fox.std() > 0.05  # not a constant frame
    small = np.asarray(model.generate(PROMPT, seed=0, frames=3, height=17, width=24, steps=2))
    assert small.shape == (3, 3, 17, 24)


def test_same_seed_same_bytes(model: Any, fox: np.ndarray[Any, Any]) -> None:
    again = np.asarray(model.generate(PROMPT, seed=0))
    assert again.tobytes() == fox.tobytes()
    guided = [np.asarray(model.generate(PROMPT, seed=3, guidance_scale=4.0)).tobytes() for _ in range(2)]
    assert guided[0] == guided[1]


def test_seed_prompt_steps_and_guidance_change_the_video(model: Any, fox: np.ndarray[Any, Any]) -> None:
    variants = {
        "seed": model.generate(PROMPT, seed=1),
        "prompt": model.generate(f"{PROMPT[::-1]} | contrast", seed=0),
        "empty prompt": model.generate("", seed=0),
        "steps": model.generate(PROMPT, seed=0, steps=1),
        "guidance": model.generate(PROMPT, seed=0, guidance_scale=4.0),
    }
    for name, other in variants.items():
        diff = float(np.abs(np.asarray(other) - fox).mean())
        assert diff > 0.01, f"changing the {name} barely changed the video (mean abs diff {diff:.4f})"


def test_frames_are_temporally_coherent(model: Any, fox: np.ndarray[Any, Any]) -> None:
    adjacent = float(np.abs(np.diff(fox, axis=0)).mean())
    independent = float(np.abs(fox - np.asarray(model.generate(PROMPT, seed=1))).mean())
    assert 0.005 < adjacent < independent / 3, (adjacent, independent)  # moves, but smoothly
    spatial = float(np.abs(np.diff(fox, axis=3)).mean())
    assert spatial < independent / 3, (spatial, independent)  # smooth frames, not pixel noise


def test_bad_params_are_errors(model: Any) -> None:
    with pytest.raises(ValueError, match="unknown params"):
        model.generate(PROMPT, seed=0, fps=24)
    with pytest.raises(ValueError, match="steps"):
        model.generate(PROMPT, seed=0, steps=0)
    with pytest.raises(ValueError, match="frames must be an integer"):
        model.generate(PROMPT, seed=0, frames=2.5)


def test_requirements_and_metadata(model: Any) -> None:
    assert model.health_check()
    req = model.get_requirements()
    assert req["gpus"] == 0 and req["gpu_memory"] == 0 and req["cpus"] == 1
    assert 256 * 1024**2 <= req["memory"] <= 1024**3
    meta = model.metadata()
    assert 5_000 <= meta["parameters"] <= 150_000
    assert "DDIM" in meta["sampler"]
    assert tuple(model.libraries) == ("torch", "numpy")
