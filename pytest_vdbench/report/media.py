"""Keep every generated video for the report: an animated GIF per case, with its settings beside it.

``frame_strip`` reads a kept GIF back as a few PNG frames (data URIs) for the self-contained report.html.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_vdbench.checks.metrics.video import to_frames

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["frame_strip", "png_data_uri", "save_videos"]


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


def png_data_uri(frame: np.ndarray[Any, Any]) -> str:
    """A uint8 ``[H, W, 3]`` frame as a ``data:image/png;base64,…`` URI (nothing to fetch)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def frame_strip(gif: Path, max_frames: int = 8, max_side: int = 192) -> list[str]:
    """Up to ``max_frames`` evenly spaced frames of a kept GIF as PNG data URIs; [] if unreadable.

    Frames larger than ``max_side`` pixels are shrunk (a 720p video would otherwise put megabytes
    of PNG into report.html); the GIF beside the report keeps the full size.
    """
    from PIL import Image, ImageSequence

    try:
        with Image.open(gif) as image:
            frames = [f.convert("RGB") for f in ImageSequence.Iterator(image)]
    except (OSError, ValueError):
        return []
    if not frames:
        return []
    count = min(max_frames, len(frames))
    picks = sorted({round(i * (len(frames) - 1) / max(1, count - 1)) for i in range(count)})
    strip = []
    for i in picks:
        frame = frames[i]
        if max(frame.size) > max_side:
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        strip.append(png_data_uri(np.asarray(frame)))
    return strip
