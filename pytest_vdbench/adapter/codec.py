"""Safetensors encoding with numpy only (the harness decodes with the ``safetensors`` library).

Format: 8-byte little-endian header length, a JSON header ``{name: {dtype, shape,
data_offsets}}`` padded with spaces to a multiple of 8, then the raw little-endian buffers.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

_DTYPES: Dict[str, str] = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
}
_NUMPY: Dict[str, str] = {v: k for k, v in _DTYPES.items()}


def as_array(value: Any) -> "np.ndarray[Any, Any]":
    """Turn a numpy array, a CPU/GPU torch tensor or any ``__array__`` object into an array."""
    detach = getattr(value, "detach", None)
    if callable(detach):  # torch: leave autograd and the GPU before numpy sees it
        value = detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
    return np.asarray(value)


def encode_safetensors(tensors: Mapping[str, Any], metadata: Optional[Mapping[str, str]] = None) -> List[Any]:
    """Encode ``tensors`` as safetensors; returns buffers to write in order (no big copy)."""
    header: Dict[str, Any] = {}
    buffers: List[Any] = []
    offset = 0
    for name, value in tensors.items():
        array = np.ascontiguousarray(as_array(value))
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        code = _DTYPES.get(array.dtype.name)
        if code is None:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} cannot be sent; use one of {sorted(_DTYPES)}")
        nbytes = array.nbytes
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        buffers.append(array.reshape(-1).data.cast("B") if nbytes else b"")
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return [struct.pack("<Q", len(raw)), raw, *buffers]


def encoded_size(buffers: Iterable[Any]) -> int:
    """Total byte length of what :func:`encode_safetensors` returned."""
    return sum(len(b) if isinstance(b, bytes) else memoryview(b).nbytes for b in buffers)


def decode_safetensors(data: bytes) -> Tuple[Dict[str, "np.ndarray[Any, Any]"], Dict[str, str]]:
    """Decode safetensors bytes into arrays (views on ``data``) and the header metadata."""
    if len(data) < 8:
        raise ValueError("safetensors payload shorter than its 8-byte header length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError(f"safetensors header length {size} exceeds payload of {len(data)} bytes")
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", None) or {}
    start = 8 + size
    out: Dict[str, "np.ndarray[Any, Any]"] = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(_NUMPY[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=start + begin).reshape(
            info["shape"]
        )
    return out, meta
