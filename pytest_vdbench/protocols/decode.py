"""Outputs of other servers back to tensors: Cog's data-URL files, JSON arrays, OIP v2 tensors.

Files are recognised by their content (Cog sends ``application/octet-stream`` for most of them):
``.npy`` and safetensors come back as the tensor the model saved; GIF/PNG/JPEG/WebP (Pillow) and
MP4/WebM/MOV (imageio or PyAV, when installed in the harness's environment) come back as the
canonical video, float32 ``[frames, 3, height, width]`` in [0, 1] (the file format fixes their
layout; 8-bit pixels divided by 255); JSON files as number arrays.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import importlib.util
import io
import json
import struct
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_vdbench.endpoint import HostLibraryMissing

__all__ = [
    "DecodeError",
    "canonical_frames",
    "decode_data_url",
    "decode_file",
    "decode_json_value",
    "decode_oip_output",
    "encode_oip_inputs",
    "oip_datatype",
]

Array = np.ndarray[Any, Any]


class DecodeError(ValueError):
    """The server's output cannot be turned into a tensor (the message says what it was)."""


def decode_data_url(url: str) -> tuple[bytes, str]:
    """``data:[<mime>][;base64],<payload>`` -> (bytes, mime)."""
    if not url.startswith("data:"):
        raise DecodeError(f"not a data URL: {url[:80]!r}")
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise DecodeError("data URL without a ',' separating its header from the payload")
    parts = header.split(";")
    mime = parts[0] or "text/plain"
    if "base64" in parts[1:]:
        try:
            return base64.b64decode(payload, validate=True), mime
        except binascii.Error as exc:
            raise DecodeError(f"data URL ({mime}) with invalid base64: {exc}") from None
    return urllib.parse.unquote_to_bytes(payload), mime


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (size,) = struct.unpack("<Q", data[:8])
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def _video_container(data: bytes) -> str | None:
    if data[4:8] == b"ftyp":
        return ".mov" if data[8:10] == b"qt" else ".mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return ".webm"
    return None


def canonical_frames(frames: Array) -> Array:
    """uint8 frames ``[frames, height, width, channels]`` (or one ``[height, width, channels]``
    image) -> float32 ``[frames, channels, height, width]`` in [0, 1]."""
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise DecodeError(
            f"decoded frames should be uint8 [frames, height, width, channels], got {frames.dtype} {list(frames.shape)}"
        )
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def _images(data: bytes) -> Array:
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as img:
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(img)]
    return canonical_frames(np.stack(frames))


def _video(data: bytes, extension: str) -> Array:
    if importlib.util.find_spec("av") is not None:
        av = importlib.import_module("av")
        with av.open(io.BytesIO(data)) as container:
            return canonical_frames(np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]))
    try:
        iio = importlib.import_module("imageio.v3")
    except ImportError:
        iio = None
    if iio is not None and importlib.util.find_spec("imageio_ffmpeg") is not None:
        return canonical_frames(np.asarray(iio.imread(data, index=None, extension=extension)))
    raise HostLibraryMissing(
        f"the model answered with a {extension} video and this Python has no decoder for it: "
        "pip install 'pytest-vdbench[video]' (PyAV) where pytest runs; or let the model return .npy, safetensors or a GIF"
    )


def decode_file(data: bytes, mime: str = "") -> Array:
    """A file's bytes (``mime`` is only a hint) -> array; the format is recognised by its content.

    Images and videos come back canonical (float32 ``[frames, 3, height, width]`` in [0, 1]).
    """
    if data.startswith(b"\x93NUMPY"):
        try:
            return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
        except ValueError as exc:
            raise DecodeError(f"malformed .npy output ({len(data)} bytes): {exc}") from None
    if _is_safetensors(data):
        from safetensors.numpy import load

        try:
            tensors = load(data)
        except Exception as exc:
            raise DecodeError(f"malformed safetensors output ({len(data)} bytes): {exc}") from None
        if "output" in tensors:
            return np.asarray(tensors["output"])
        if len(tensors) == 1:
            return np.asarray(next(iter(tensors.values())))
        raise DecodeError(f"safetensors output holds tensors {sorted(tensors)}: name the video 'output'")
    if data[:6] in (b"GIF87a", b"GIF89a") or data.startswith((b"\x89PNG", b"\xff\xd8\xff")) or data[8:12] == b"WEBP":
        try:
            return _images(data)
        except (OSError, ValueError) as exc:
            raise DecodeError(f"malformed image output ({mime}, {len(data)} bytes): {exc}") from None
    container = _video_container(data)
    if container is not None:
        return _video(data, container)
    if mime.endswith("json") or data.lstrip()[:1] in (b"[", b"{"):
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise DecodeError(f"malformed JSON output file: {exc}") from None
        return decode_json_value(value)
    raise DecodeError(
        f"cannot decode an output file of type {mime or 'unknown'} ({len(data)} bytes, starting {data[:16]!r}); "
        "return .npy, safetensors, GIF/PNG/JPEG/WebP, MP4/WebM or a JSON array"
    )


def decode_json_value(value: Any, dtype: str | None = None) -> Array:
    """A JSON number array (nested lists) -> array, cast to ``dtype`` when given (JSON has none)."""
    try:
        array = np.asarray(value, dtype=dtype) if dtype else np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"the JSON output is not a rectangular number array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise DecodeError(f"the JSON output is not a number array (it parses as {array.dtype}): {str(value)[:120]}")
    return array


# --- Open Inference Protocol v2 -----------------------------------------------------------------

_OIP_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}


def oip_datatype(value: Any) -> str:
    """The OIP datatype a JSON parameter value travels as (bool, int, float, str; lists of one of them)."""
    items = value if isinstance(value, list) else [value]
    flat: list[Any] = []
    stack = list(items)
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            flat.append(item)
    if not flat:
        return "FP64"
    if all(isinstance(v, bool) for v in flat):
        return "BOOL"
    if all(isinstance(v, str) for v in flat):
        return "BYTES"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        return "FP64"
    raise DecodeError(f"cannot send {value!r} as an OIP tensor: use numbers, booleans or strings (or lists of one kind)")


def _tensor(name: str, value: Any) -> dict[str, Any]:
    datatype = oip_datatype(value)
    if not isinstance(value, list):
        return {"name": name, "datatype": datatype, "shape": [1], "data": [value]}
    try:
        array = np.asarray(value)
    except ValueError:
        raise DecodeError(f"parameter {name!r}: nested lists must be rectangular") from None
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.reshape(-1).tolist()}


def encode_oip_inputs(
    prompt: str,
    seed: int | None,
    params: Mapping[str, Any],
    *,
    prompt_input: str = "prompt",
    seed_input: str | None = "seed",
) -> list[dict[str, Any]]:
    """The request's ``inputs``: prompt (BYTES [1]), seed (INT64 [1]; left out when None), one tensor per param."""
    inputs = [{"name": prompt_input, "datatype": "BYTES", "shape": [1], "data": [prompt]}]
    if seed is not None and seed_input is not None:
        inputs.append({"name": seed_input, "datatype": "INT64", "shape": [1], "data": [int(seed)]})
    for name, value in params.items():
        if name in (prompt_input, seed_input):
            raise DecodeError(f"parameter {name!r} would shadow the input vdbench fills from the case's prompt/seed")
        if isinstance(value, Mapping) or value is None:
            raise DecodeError(f"parameter {name!r} = {value!r} cannot travel as an OIP tensor")
        inputs.append(_tensor(name, value))
    return inputs


def decode_oip_output(outputs: Sequence[Mapping[str, Any]], name: str | None = None) -> Array:
    """Pick the output tensor (``name``, else the only one, else 'output') and rebuild it as an array."""
    if not outputs:
        raise DecodeError("the inference response has no outputs")
    names = [str(o.get("name")) for o in outputs]
    wanted = name or (names[0] if len(outputs) == 1 else "output")
    if wanted not in names:
        hint = "oip.output in the manifest" if name else "set oip.output in the manifest to one of them"
        raise DecodeError(f"the inference response has outputs {names}, none named {wanted!r} ({hint})")
    out = outputs[names.index(wanted)]
    datatype = str(out.get("datatype"))
    shape = out.get("shape")
    if datatype not in _OIP_DTYPES:
        raise DecodeError(f"output {wanted!r} has datatype {datatype}, which is not a number tensor")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise DecodeError(f"output {wanted!r} has a malformed shape {shape!r}")
    params = out.get("parameters") or {}
    if isinstance(params, Mapping) and "binary_data_size" in params:
        raise DecodeError(f"output {wanted!r} uses the binary data extension, which the HTTP/JSON client does not read")
    data = out.get("data")
    if not isinstance(data, list):
        raise DecodeError(f"output {wanted!r} has no data list (got {type(data).__name__})")
    try:
        flat = np.asarray(data, dtype=_OIP_DTYPES[datatype]).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"output {wanted!r}: data does not fit {datatype}: {exc}") from None
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if flat.size != count:
        raise DecodeError(f"output {wanted!r}: {flat.size} values do not fill shape {shape} ({count} values)")
    return flat.reshape(shape)
