"""Output fingerprints (digest, shape, dtype, per-channel mean/std, thumbnail) and drift between runs."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["case_fingerprints", "drift", "max_abs_diff", "output_digest"]

KEEP_LIMIT = 64 << 20  # --vdbench-keep-outputs keeps outputs up to this size


def output_digest(output: np.ndarray[Any, Any]) -> str:
    a = np.ascontiguousarray(output)
    h = hashlib.sha256(f"{a.dtype.str}:{a.shape}:".encode())
    h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def _channel_stats(a: np.ndarray[Any, Any]) -> dict[str, list[float]]:
    """Per channel: axis 1 of a [F, C, H, W] video, the last axis otherwise (columns of a table)."""
    if a.dtype == object or a.size == 0 or not np.issubdtype(a.dtype, np.number):
        return {"mean": [], "std": []}
    f = a.astype(np.float64)
    axis = 1 if f.ndim == 4 and f.shape[1] <= 4 else f.ndim - 1
    moved = np.moveaxis(f, axis, 0).reshape(f.shape[axis], -1)
    return {"mean": [float(x) for x in moved.mean(axis=1)], "std": [float(x) for x in moved.std(axis=1)]}


def _thumbnail(a: np.ndarray[Any, Any]) -> str | None:
    """Up to 4 frames, 32 px high, side by side: a PNG (base64)."""
    from PIL import Image

    from pytest_vdbench.checks.metrics.video import to_frames

    try:
        frames = to_frames(a)
    except (ValueError, TypeError, IndexError):
        return None
    picks = frames[np.linspace(0, len(frames) - 1, num=min(4, len(frames))).astype(int)]
    height = 32
    width = max(1, round(frames.shape[2] * height / max(1, frames.shape[1])))
    strip = Image.new("RGB", (width * len(picks), height))
    for i, frame in enumerate(picks):
        strip.paste(Image.fromarray(frame).resize((width, height)), (i * width, 0))
    buf = io.BytesIO()
    strip.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _packed(a: np.ndarray[Any, Any]) -> str | None:
    if a.nbytes > KEEP_LIMIT or a.dtype == object:
        return None
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return base64.b64encode(zlib.compress(buf.getvalue(), 1)).decode()


def unpack(blob: bytes) -> np.ndarray[Any, Any]:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)  # type: ignore[no-any-return]


def case_fingerprints(run: ModelRun, case_hashes: dict[str, str], keep_outputs: bool) -> list[dict[str, Any]]:
    """One fingerprint per case with a seed and a first output (JSON-able, shipped from xdist workers)."""
    out = []
    for case in run.spec.manifest.cases:
        result = run.cases.get(case.id)
        if case.seed is None or result is None or result.generation is None:
            continue
        a = np.asarray(result.generation.output)
        fp: dict[str, Any] = {
            "case": case.id,
            "case_hash": case_hashes[case.id],
            "digest": output_digest(a),
            "shape": list(a.shape),
            "dtype": str(a.dtype),
            "stats": _channel_stats(a),
            "thumbnail": _thumbnail(a) if run.spec.manifest.modality == "video" else None,
        }
        if keep_outputs:
            fp["output"] = _packed(a)
        out.append(fp)
    return out


def max_abs_diff(before: bytes | None, after: str | None) -> float | None:
    if before is None or after is None:
        return None
    a, b = unpack(before), unpack(base64.b64decode(after))
    if a.shape != b.shape or not np.issubdtype(a.dtype, np.number) or not np.issubdtype(b.dtype, np.number):
        return None
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def drift(fp: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any] | None:
    """What changed between a stored fingerprint and a new one (None when the output is identical)."""
    if fp["digest"] == stored["digest"]:
        return None
    change: dict[str, Any] = {
        "case": fp["case"],
        "since_run": stored["run_id"],
        "digest_before": stored["digest"][:12],
        "digest_after": fp["digest"][:12],
    }
    if list(stored["shape"]) != fp["shape"] or stored["dtype"] != fp["dtype"]:
        change["shape"] = f"{stored['dtype']}{list(stored['shape'])} -> {fp['dtype']}{fp['shape']}"
    diff = max_abs_diff(stored.get("output"), fp.get("output"))
    if diff is not None:
        change["max_abs_diff"] = diff
        change["mean_before"], change["mean_after"] = stored["stats"]["mean"], fp["stats"]["mean"]
        change["std_before"], change["std_after"] = stored["stats"]["std"], fp["stats"]["std"]
    return change


def describe(model: str, changes: list[dict[str, Any]]) -> str:
    parts = []
    for c in changes:
        text = f"{c['case']}: digest {c['digest_before']} -> {c['digest_after']}"
        if "shape" in c:
            text += f", {c['shape']}"
        if "max_abs_diff" in c:
            text += f", max |diff| {c['max_abs_diff']:.3g}"
        parts.append(text)
    since = changes[0]["since_run"]
    return f"vdbench: {model}: outputs changed since run {since[:12]} ({'; '.join(parts)})"
