"""VBench 0.1.5 as a vdbench metric: every dimension through VBench's own ``VBench.evaluate``.

Each generated video is written losslessly (FFV1 in AVI: read back bit-identical by OpenCV, which
VBench decodes with) and evaluated by ``vbench.VBench(...).evaluate(..., mode="custom_input",
local=True)``: VBench's own JSON bookkeeping, ``init_submodules`` and ``compute_<dimension>``.
A dimension whose weights are not in VBench's cache (``$VBENCH_CACHE_DIR``, README "VBench scores")
is answered ``not computed: missing <file>`` and never run: VBench would try to download it.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np

from pytest_vdbench.adapter.metric import MetricAdapter, not_computed, score

#: The files VBench 0.1.5's ``init_submodules(local=True)`` (and ``aesthetic_quality``) read from
#: its cache, relative to ``$VBENCH_CACHE_DIR``; temporal_flickering needs none.
WEIGHTS: Dict[str, List[str]] = {
    "subject_consistency": ["dino_model/facebookresearch_dino_main/hubconf.py", "dino_model/dino_vitbase16_pretrain.pth"],
    "background_consistency": ["clip_model/ViT-B-32.pt"],
    "aesthetic_quality": ["clip_model/ViT-L-14.pt", "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"],
    "imaging_quality": ["pyiqa_model/musiq_spaq_ckpt-358bb6af.pth"],
    "object_class": ["grit_model/grit_b_densecap_objectdet.pth"],
    "multiple_objects": ["grit_model/grit_b_densecap_objectdet.pth"],
    "human_action": ["umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth"],
    "color": ["grit_model/grit_b_densecap_objectdet.pth"],
    "spatial_relationship": ["grit_model/grit_b_densecap_objectdet.pth"],
    "scene": ["caption_model/tag2text_swin_14m.pth"],
    "temporal_style": ["ViCLIP/ViClip-InternVid-10M-FLT.pth"],
    "appearance_style": ["clip_model/ViT-B-32.pt"],
    "overall_consistency": ["ViCLIP/ViClip-InternVid-10M-FLT.pth"],
    "motion_smoothness": ["amt_model/amt-s.pth"],
    "dynamic_degree": ["raft_model/models/raft-things.pth"],
    "temporal_flickering": [],
}
#: Dimensions VBench itself refuses for custom prompts (``check_dimension_requires_extra_info``).
NEEDS_STANDARD_PROMPTS = ("object_class", "multiple_objects", "scene", "appearance_style", "color", "spatial_relationship")


def to_uint8_bgr(frames: Any) -> "np.ndarray[Any, Any]":
    """``[F, C, H, W]`` float in [0, 1] or ``[F, H, W, C]`` uint8 RGB -> ``[F, H, W, 3]`` uint8 BGR."""
    array = np.asarray(frames)
    if array.ndim != 4:
        raise ValueError(f"frames must be 4-D, got shape {list(array.shape)}")
    if array.dtype != np.uint8:
        if array.shape[1] not in (1, 3):
            raise ValueError(f"float frames must be [F, C, H, W] with C 1 or 3, got {list(array.shape)}")
        array = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., ::-1])


def write_lossless(frames: "np.ndarray[Any, Any]", path: Path, fps: float = 8.0) -> None:
    """Write BGR frames as FFV1/AVI and check OpenCV reads the very same bytes back."""
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV {cv2.__version__} cannot write FFV1 to {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    back = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        back.append(frame)
    capture.release()
    if len(back) != len(frames) or not np.array_equal(np.stack(back), frames):
        raise RuntimeError(f"{path}: OpenCV did not read back the {len(frames)} frames written (not lossless)")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class VBenchScorer(MetricAdapter):
    """VBench's dimensions on one video each; weight-free ones always, the others when cached."""

    libraries = ("vbench", "torch", "torchvision", "numpy", "opencv-python-headless", "decord")

    def load(self) -> None:
        import torchvision_ops_schema

        torchvision_ops_schema.declare()
        import vbench
        import vbench.utils

        self.vbench = vbench
        self.cache = Path(vbench.utils.CACHE_DIR)
        wanted = self.options.get("dimensions") or list(WEIGHTS)
        unknown = sorted(set(wanted) - set(WEIGHTS))
        if unknown:
            raise ValueError(f"options.dimensions: unknown VBench dimensions {unknown}; known: {sorted(WEIGHTS)}")
        self.dimensions: List[str] = list(wanted)
        self.missing = {d: [str(self.cache / f) for f in WEIGHTS[d] if not (self.cache / f).exists()] for d in self.dimensions}
        self.hashes = {
            f: sha256(self.cache / f)
            for d in self.dimensions
            for f in WEIGHTS[d]
            if not self.missing[d] and (self.cache / f).is_file()
        }

    def runnable(self) -> List[str]:
        return [d for d in self.dimensions if not self.missing[d] and d not in NEEDS_STANDARD_PROMPTS]

    def metadata(self) -> Mapping[str, Any]:
        return {
            "vbench_version": self.vbench_version(),
            "cache_dir": str(self.cache),
            "dimensions": self.dimensions,
            "computed": self.runnable(),
            "weights_sha256": self.hashes,
        }

    @staticmethod
    def vbench_version() -> str:
        from importlib import metadata

        return metadata.version("vbench")

    def score(self, frames: Any, prompt: str, **settings: Any) -> Mapping[str, Mapping[str, Any]]:
        video = to_uint8_bgr(frames)
        results: Dict[str, Any] = {}
        for dim in self.dimensions:
            if self.missing[dim]:
                results[dim] = not_computed(f"missing {self.missing[dim][0]}")
            elif dim in NEEDS_STANDARD_PROMPTS:
                results[dim] = not_computed("VBench evaluates it on its standard prompt suite only (custom_input refuses it)")
        runnable = self.runnable()
        if runnable:
            results.update(self.evaluate(video, prompt, runnable))
        return {dim: results[dim] for dim in self.dimensions}

    def evaluate(self, video: "np.ndarray[Any, Any]", prompt: str, dims: List[str]) -> Dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="vbench-") as tmp:
            path = Path(tmp) / "video.avi"
            write_lossless(video, path)
            bench = self.vbench.VBench("cpu", None, str(Path(tmp) / "out"))
            out: Dict[str, Any] = {}
            for dim in dims:  # one evaluate per dimension: one failing dimension spoils no other
                try:
                    bench.evaluate(str(path), dim, prompt_list=[prompt], dimension_list=[dim], local=True, mode="custom_input")
                except Exception as exc:  # noqa: BLE001 - reported as this dimension's error
                    out[dim] = not_computed(f"VBench {dim} raised {type(exc).__name__}: {exc}")
                    continue
                out[dim] = score(self.read_result(Path(tmp) / "out" / f"{dim}_eval_results.json", dim))
            return out

    @staticmethod
    def read_result(path: Path, dim: str) -> float:
        import json

        average, _per_video = json.loads(path.read_text())[dim]
        return float(average)
