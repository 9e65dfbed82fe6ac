"""``clip_score``: CLIP text-to-video alignment, a metric that plugs in through the hook like any other.

Shipped as a ``pytest11`` plugin module of its own (``vdbench-clip``): the plugin core knows nothing
of it. The score is CLIPScore's definition averaged over frames: ``100 * max(cos(image, text), 0)``
between each frame's CLIP image embedding and the prompt's text embedding. Range [0, 100]; higher is
better. Needs ``transformers`` and ``torch`` on the harness's host (``pip install
'pytest-vdbench[clip]'``) and the weights of ``openai/clip-vit-base-patch32`` in the Hugging Face
cache (nothing is downloaded: ``huggingface-cli download openai/clip-vit-base-patch32`` beforehand),
or another CLIP named by ini ``vdbench_clip_model`` (a repo id in the cache, or a local directory
written by ``save_pretrained``). When either is missing the score is reported as not computed, with
the exact file or package that is missing, and a manifest bounding it fails ``test_quality`` saying so.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_vdbench.checks.metrics import MetricInfo, MetricRegistry, ScoreContext

__all__ = ["DEFAULT_MODEL", "ClipScore"]

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
INFO = MetricInfo("clip_score", "video", (0, 100), "higher", "the frames do not show what the prompt says", needs="prompt")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _missing_file(source: str) -> str | None:
    """The first file a CLIP at ``source`` (a directory or a cached repo id) lacks, or None."""
    folder = Path(source)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            return str(folder / "config.json")
        if not any((folder / w).is_file() for w in _WEIGHTS):
            return str(folder / _WEIGHTS[0])
        return None
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(source, "config.json"), str):
        return f"{source}/config.json in the Hugging Face cache"
    if not any(isinstance(try_to_load_from_cache(source, w), str) for w in _WEIGHTS):
        return f"{source}/{_WEIGHTS[0]} in the Hugging Face cache"
    return None


@functools.cache
def _load(source: str) -> tuple[Any, Any]:
    import transformers

    lib: Any = transformers  # typed loosely: transformers' own annotations vary across 4.x and 5.x
    model = lib.CLIPModel.from_pretrained(source, local_files_only=True).eval()
    return model, lib.CLIPProcessor.from_pretrained(source, local_files_only=True)


class ClipScore:
    """The ``clip_score`` scorer (see the module docstring)."""

    metrics: tuple[MetricInfo, ...] = (INFO,)

    def __init__(self, source: str = DEFAULT_MODEL) -> None:
        self.source = source

    def unavailable(self) -> str | None:
        for package in ("torch", "transformers"):
            if importlib.util.find_spec(package) is None:
                return f"needs {package} on the harness's host: pip install 'pytest-vdbench[clip]'"
        missing = _missing_file(self.source)
        if missing is not None:
            return f"CLIP weights missing: {missing} (download {self.source} beforehand, or set ini vdbench_clip_model)"
        return None

    def score(self, ctx: ScoreContext) -> dict[str, float]:
        return {"clip_score": float(100 * np.clip(self.cosines(ctx), 0, None).mean())}

    def cosines(self, ctx: ScoreContext) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Cosine similarity of each frame's image embedding with the prompt's text embedding."""
        import torch

        from pytest_vdbench.checks.metrics.video import to_canonical

        frames = to_canonical(ctx.output)  # [F, C, H, W] float32 in [0, 1]
        if frames.shape[1] == 1:
            frames = np.repeat(frames, 3, axis=1)
        images = [np.ascontiguousarray((f[:3].transpose(1, 2, 0) * 255).round().astype(np.uint8)) for f in frames]
        model, processor = _load(self.source)
        inputs = processor(text=[ctx.case.prompt or ""], images=images, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            image = _features(model.get_image_features(pixel_values=inputs["pixel_values"]))
            text = _features(model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]))
        cosine = torch.nn.functional.cosine_similarity(image, text.expand_as(image), dim=-1)
        return cosine.double().numpy()


def _features(out: Any) -> Any:
    """transformers 5 may return a model output instead of a tensor: take its pooled embedding."""
    return out if hasattr(out, "shape") else out.pooler_output


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("vdbench_clip_model", f"CLIP for clip_score: a cached repo id or a local directory. Default: {DEFAULT_MODEL}")


def pytest_vdbench_add_metrics(registry: MetricRegistry, config: pytest.Config | None) -> None:
    source = str(config.getini("vdbench_clip_model") or DEFAULT_MODEL) if config is not None else DEFAULT_MODEL
    registry.add(ClipScore(source))
