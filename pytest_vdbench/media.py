"""Keep every generated video for the report: an animated GIF per case, with its settings beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["save_videos", "to_frames"]


def to_frames(video: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Canonical video (float [F, C, H, W] in [0, 1] or uint8 [F, H, W, C]) -> uint8 [F, H, W, 3]."""
    from pytest_vdbench.metrics.video import to_canonical

    v = to_canonical(video)[:, :3]
    if v.shape[1] == 1:
        v = np.repeat(v, 3, axis=1)
    frames: np.ndarray[Any, Any] = (np.clip(np.nan_to_num(v), 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return frames


def save_videos(run: ModelRun, directory: Path, fps: int = 8) -> list[Path]:
    """Write ``<model>-<case>.gif`` and ``.json`` (prompt, seed, params, shape) for each video case."""
    from PIL import Image

    if run.spec.manifest.modality != "video":
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for case in run.spec.manifest.cases:
        result = run.cases.get(case.id)
        if result is None or result.generation is None:
            continue
        output = result.generation.output
        try:
            frames = to_frames(output)
        except ValueError:
            continue  # a malformed output is reported by test_generate; there is nothing to show
        scale = max(1, 128 // max(frames.shape[1], frames.shape[2]))  # tiny CI videos: enlarge to be seen
        images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.Resampling.NEAREST) for f in frames]
        stem = f"{run.spec.id}-{case.id}"
        gif = directory / f"{stem}.gif"
        images[0].save(gif, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        info = {
            "model": run.spec.id,
            "case": case.id,
            "prompt": case.prompt,
            "seed": case.seed,
            "params": case.params,
            "shape": list(output.shape),
            "dtype": output.dtype.name,
            "file": gif.name,
        }
        (directory / f"{stem}.json").write_text(json.dumps(info, indent=2))
        written.append(gif)
    return written
