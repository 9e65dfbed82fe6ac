"""Frames for report.html: read back from the kept GIFs as PNG data URIs, and the bar charts."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_vdbench.report.html import CHART_WIDTH, bar_chart
from pytest_vdbench.report.media import frame_strip, png_data_uri


def gif(path: Path, frames: int, size: tuple[int, int] = (8, 8)) -> Path:
    images = [Image.fromarray(np.full((*size, 3), 20 * i, dtype=np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_png_data_uri_round_trips_a_frame() -> None:
    frame = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    assert np.array_equal(decode(png_data_uri(frame)), frame)


def test_strip_keeps_every_frame_of_a_short_video_in_order(tmp_path: Path) -> None:
    strip = frame_strip(gif(tmp_path / "v.gif", 6), max_frames=8)
    assert [int(decode(u)[0, 0, 0]) for u in strip] == [0, 20, 40, 60, 80, 100]


def test_strip_spreads_evenly_over_a_long_video(tmp_path: Path) -> None:
    strip = frame_strip(gif(tmp_path / "v.gif", 11), max_frames=3)
    assert [int(decode(u)[0, 0, 0]) for u in strip] == [0, 100, 200]  # first, middle, last


def test_strip_shrinks_large_frames_keeping_their_shape(tmp_path: Path) -> None:
    strip = frame_strip(gif(tmp_path / "v.gif", 2, size=(480, 720)), max_side=192)
    assert [decode(u).shape for u in strip] == [(128, 192, 3)] * 2
    assert frame_strip(gif(tmp_path / "s.gif", 2, size=(128, 128)), max_side=192)[0] == png_data_uri(
        np.zeros((128, 128, 3), np.uint8)
    )


def test_strip_of_a_missing_or_broken_file_is_empty(tmp_path: Path) -> None:
    assert frame_strip(tmp_path / "none.gif") == []
    (tmp_path / "bad.gif").write_bytes(b"GIF89a not really")
    assert frame_strip(tmp_path / "bad.gif") == []


def test_bar_chart_scales_to_the_largest_and_names_missing_values() -> None:
    chart = bar_chart("t", [{"id": "a", "x": 2.0}, {"id": "b", "x": 0.5}, {"id": "c", "x": None}], "x", "seconds")
    assert {bar["label"]: bar["width"] for bar in chart["bars"]} == {"a": CHART_WIDTH, "b": CHART_WIDTH / 4}
    assert [bar["text"] for bar in chart["bars"]] == ["2.000s", "0.500s"] and chart["missing"] == ["c"]
