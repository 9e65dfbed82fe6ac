"""Client for the native adapter REST contract: JSON endpoints, binary safetensors outputs.

It trusts nothing the adapter sends: every answer goes through the bounded transport of
:mod:`pytest_vdbench.protocols._http`, the safetensors output is checked entry by entry and decoded
as views of the one buffer it was read into, and the adapter's own timing and memory headers are
used only when they are possible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from safetensors.numpy import save as save_safetensors

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation
from pytest_vdbench.protocols._http import JSON_LIMIT, Http, Malformed, parse_json, parse_object
from pytest_vdbench.protocols.base import server_time

__all__ = ["AdapterClient", "AdapterError", "Generation", "decode_output"]

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_MAX_HEADER = 1 << 24
_MAX_RSS = 1 << 50  # a petabyte: anything above is not a measurement


def decode_output(data: bytearray | bytes) -> dict[str, np.ndarray[Any, Any]]:
    """Safetensors ``data`` as arrays viewing it (no copy); ValueError naming the first bad entry."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, shorter than the 8-byte header length")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, _MAX_HEADER):
        raise ValueError(f"header length {size} exceeds the payload of {len(data)} bytes")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError(f"header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    start, payload = 8 + size, len(data) - 8 - size
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
            raise ValueError(f"tensor {name!r}: entry {str(info)[:200]} has no known dtype")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r}: shape {str(shape)[:100]} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"tensor {name!r}: data_offsets {str(offsets)[:100]} is not [begin, end]")
        begin, end = offsets
        dtype = np.dtype(_DTYPES[info["dtype"]])
        count = math.prod(shape)
        if not 0 <= begin <= end <= payload or end - begin != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: data_offsets {offsets} do not hold {shape} {info['dtype']} in {payload} bytes")
        out[name] = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin).reshape(shape)
    return out


def _peak_rss(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    value = int(raw.strip())
    return value if value <= _MAX_RSS else None


class AdapterClient:
    """Talks to one adapter server. Thread-compatible: one connection per request."""

    protocol = "native"
    live_path = "/health/live"
    ready_path = "/health/ready"

    def __init__(self, endpoint: Endpoint, *, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._http = Http(endpoint, timeout)

    def get_json(self, path: str, *, timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        """GET ``path``; returns (status, JSON body); raises OSError when nothing answers."""
        return self._http.get_json(path, timeout=timeout)

    def ready(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        return self.get_json(self.ready_path, timeout=timeout)

    def live(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        return self.get_json(self.live_path, timeout=timeout)

    def _ok_json(self, path: str) -> dict[str, Any]:
        status, _, data = self._http.call(f"GET {path}", "GET", path, timeout=min(self.timeout, 60.0))
        if status != 200:
            raise self._error(f"GET {path}", status, data)
        body = parse_json(data, f"GET {path}")
        if not isinstance(body, dict):
            raise Malformed(f"GET {path}: the answer is a JSON {type(body).__name__}, not an object: {bytes(data[:200])!r}")
        return body

    def metadata(self) -> dict[str, Any]:
        return self._ok_json("/v1/metadata")

    def requirements(self) -> dict[str, Any]:
        return self._ok_json("/v1/requirements")

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None,
        params: Mapping[str, Any],
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Generation:
        """POST /v1/generate and decode the safetensors ``output`` tensor (refusing over ``max_bytes``)."""
        body = json.dumps({"prompt": prompt, "seed": seed, "params": dict(params)}).encode()
        limit = max_bytes if max_bytes is not None else 1 << 62
        answer = self._http.answer_or_error("generate", "POST", "/v1/generate", body, timeout=timeout, max_bytes=limit)
        data = answer.body
        if answer.status != 200:
            raise self._error("POST /v1/generate", answer.status, data)
        try:
            tensors = decode_output(data)
        except ValueError as exc:
            raise AdapterError(f"generate returned a malformed safetensors body ({len(data)} bytes): {exc}") from None
        if "output" not in tensors:
            raise AdapterError(f"generate returned tensors {sorted(tensors)} without 'output'")
        claim = answer.headers.get("x-vdbench-seconds")
        seconds, note = server_time(claim, answer.seconds, len(data), "X-Vdbench-Seconds")
        if claim is None:
            seconds, note = answer.seconds, None  # an adapter that does not tell: the round trip, no complaint
        return Generation(
            output=tensors["output"],
            server_seconds=seconds,
            total_seconds=answer.seconds,
            peak_rss_bytes=_peak_rss(answer.headers.get("x-vdbench-peak-rss")),
            nbytes=len(data),
            timing_note=note,
        )

    def fit(
        self,
        table: np.ndarray[Any, Any],
        columns: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> float:
        """POST /v1/fit with the table as safetensors; returns the adapter's fit seconds."""
        meta = {"columns": json.dumps(list(columns)), "params": json.dumps(dict(params))}
        body = save_safetensors({"table": np.ascontiguousarray(table)}, metadata=meta)
        answer = self._http.answer_or_error(
            "fit", "POST", "/v1/fit", body, timeout=timeout, content_type="application/octet-stream", limit_name="timeouts.fit"
        )
        if answer.status != 200:
            raise self._error("POST /v1/fit", answer.status, answer.body)
        reply = parse_json(answer.body, "POST /v1/fit")
        seconds = reply.get("fit_seconds") if isinstance(reply, dict) else None
        value, _ = server_time(seconds, answer.seconds, len(body), "fit_seconds")
        return value

    @staticmethod
    def _error(what: str, status: int, data: bytes | bytearray) -> AdapterError:
        body = parse_object(data[:JSON_LIMIT])
        if set(body) == {"error"} and not data.lstrip().startswith(b"{"):
            return AdapterError(f"{what} answered {status} with a non-JSON body: {bytes(data[:300])!r}", status)
        traceback = body.get("traceback")
        text = traceback if isinstance(traceback, str) else None
        return AdapterError(f"{what} answered {status}: {body.get('error', body)}", status, text)
