"""``protocol: cog``: a Cog predictor's HTTP server (``python -m cog.server.http``), unchanged.

- readiness: ``GET /health-check`` -> JSON ``status``: READY/BUSY -> 200 (``setup_seconds`` from
  ``setup.started_at``/``completed_at``), STARTING -> 503, SETUP_FAILED/DEFUNCT -> 500 with Cog's
  setup logs (the harness stops waiting and reports them);
- generate: ``POST /predictions {"input": {prompt, seed, **params}}`` (synchronous; the input names
  come from ``cog.prompt_input``/``cog.seed_input``) -> ``output`` decoded to a tensor: a data-URL
  file (.npy, safetensors, GIF/PNG/..., MP4 with imageio), a list of frame images, or a JSON number
  array; ``metrics.predict_time`` is the server time;
- requirements come from the manifest (``cog.requirements``) and say so; Cog has no fit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation
from pytest_vdbench.manifest import CogOptions
from pytest_vdbench.protocols._http import WIRE_FACTOR, WIRE_SLACK, Http, parse_object
from pytest_vdbench.protocols.base import NotSupported, declared_requirements, server_time
from pytest_vdbench.protocols.decode import DecodeError, decode_data_url, decode_file, decode_json_value

__all__ = ["CogClient", "cog_inputs", "cog_readiness", "decode_cog_output", "setup_seconds"]

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def _parse_time(text: Any) -> datetime | None:
    """Cog's timestamps carry nanoseconds (``...:43.222304061+00:00``), which Python 3.10 cannot parse."""
    match = _TIME_RE.match(str(text or ""))
    if not match:
        return None
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{base}.{(fraction or '0')[:6].ljust(6, '0')}{zone}")


def setup_seconds(setup: Mapping[str, Any]) -> float | None:
    """How long ``setup()`` took, from the health check's ``setup.started_at``/``completed_at``."""
    start, end = _parse_time(setup.get("started_at")), _parse_time(setup.get("completed_at"))
    return (end - start).total_seconds() if start is not None and end is not None else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def cog_readiness(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """A ``/health-check`` body as the harness's readiness answer (200 / 503 / 500 with the setup logs)."""
    state = str(body.get("status", ""))
    setup = _mapping(body.get("setup"))
    if state in ("READY", "BUSY"):
        return 200, {"status": "ready", "cog_status": state, "setup_seconds": setup_seconds(setup)}
    if state == "STARTING":
        return 503, {"status": "starting (Cog is running setup())"}
    if state in ("SETUP_FAILED", "DEFUNCT"):
        what = "setup() raised" if state == "SETUP_FAILED" else "the predictor's worker died"
        logs = str(setup.get("logs") or "").rstrip() or "(Cog gave no setup logs)"
        return 500, {
            "status": "failed",
            "phase": "Cog's setup()",
            "error": f"Cog reports {state}: {what}. Cog's setup logs:\n{logs}",
        }
    if state == "UNHEALTHY":
        return 503, {"status": "unhealthy (the predictor's healthcheck() failed)"}
    return 503, {"status": f"unknown Cog status {state!r}"}


def cog_inputs(prompt: str, seed: int | None, params: Mapping[str, Any], options: CogOptions | None = None) -> dict[str, Any]:
    """A case as the predictor's ``input``: its params, the prompt and the seed under their input names."""
    options = options or CogOptions()
    for name in (options.prompt_input, options.seed_input):
        if name is not None and name in params:
            raise AdapterError(f"case params set {name!r}, which is the input vdbench fills from the case's prompt/seed", 400)
    inputs = {**params, options.prompt_input: prompt}
    if seed is not None and options.seed_input is not None:
        inputs[options.seed_input] = seed
    return inputs


def _decode_files(urls: Sequence[str]) -> np.ndarray[Any, Any]:
    arrays = [decode_file(*decode_data_url(url)) for url in urls]
    if len(arrays) == 1:
        return arrays[0]
    # a list of frame images: each decodes to [1, 3, H, W]
    if all(a.ndim == 4 and a.dtype == np.float32 and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
        return np.concatenate(arrays)
    raise DecodeError(f"a list of {len(arrays)} files that are not frames of one size: {[list(a.shape) for a in arrays]}")


def decode_cog_output(output: Any, options: CogOptions | None = None) -> np.ndarray[Any, Any]:
    """A prediction's ``output`` -> tensor (see the module docstring for what is understood)."""
    options = options or CogOptions()
    if options.output is not None:
        if not isinstance(output, Mapping) or options.output not in output:
            keys = sorted(output) if isinstance(output, Mapping) else type(output).__name__
            raise DecodeError(f"cog.output is {options.output!r} but the output has {keys}")
        output = output[options.output]
    if isinstance(output, str):
        if output.startswith("data:"):
            return decode_file(*decode_data_url(output))
        if output.startswith(("http://", "https://")):
            raise DecodeError(
                f"Cog uploaded the output to {output[:80]}: run the server without --upload-url so files come back "
                "inline as data URLs"
            )
        raise DecodeError(f"the output is a string, not a file or tensor: {output[:80]!r}")
    if isinstance(output, list) and output and all(isinstance(item, str) for item in output):
        if not all(item.startswith("data:") for item in output):
            raise DecodeError("a list output whose items are not all data-URL files")
        return _decode_files(output)
    if isinstance(output, Mapping):
        raise DecodeError(f"the output is an object with keys {sorted(output)}: set cog.output to the one with the video")
    if output is None:
        raise DecodeError("the prediction succeeded without an output")
    return decode_json_value(output, options.dtype)


class CogClient:
    """Talks to a Cog HTTP server (see the module docstring)."""

    protocol = "cog"
    live_path = "/health-check"
    ready_path = "/health-check"

    def __init__(self, endpoint: Endpoint, *, timeout: float = 300.0, options: CogOptions | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.options = options or CogOptions()
        self._http = Http(endpoint, timeout)

    def live(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """Cog's health check answers 200 whenever the server is up (whatever its status)."""
        status, body = self._http.get_json("/health-check", timeout=timeout)
        return status, {"status": body.get("status", body.get("error", ""))}

    def ready(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        status, body = self._http.get_json("/health-check", timeout=timeout)
        if status != 200:
            return (500 if status == 500 else 503), {"status": f"GET /health-check answered {status}", **body}
        return cog_readiness(body)

    def metadata(self) -> dict[str, Any]:
        """Cog's version and setup outcome from ``/health-check``."""
        try:
            status, body = self._http.get_json("/health-check")
        except OSError as exc:
            raise AdapterError(f"GET /health-check failed: {exc!r}") from None
        if status != 200:
            raise AdapterError(f"GET /health-check answered {status}: {body}", status)
        setup = _mapping(body.get("setup"))
        return {
            "protocol": "cog",
            "server": body.get("version"),
            "status": body.get("status"),
            "setup_status": setup.get("status"),
            "setup_seconds": setup_seconds(setup),
        }

    def requirements(self) -> dict[str, Any]:
        return declared_requirements("cog", "cog", self.options.requirements)

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None,
        params: Mapping[str, Any],
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Generation:
        """POST /predictions and decode ``output`` (the answer is refused over ``max_bytes`` x the JSON factor)."""
        inputs = cog_inputs(prompt, seed, params, self.options)
        wire_limit = max_bytes * WIRE_FACTOR + WIRE_SLACK if max_bytes is not None else None
        start = time.perf_counter()
        deadline = time.monotonic() + (timeout or self.timeout)
        delay = 0.005
        while True:
            status, _, data = self._http.call(
                "generate", "POST", "/predictions", {"input": inputs}, timeout=timeout, max_bytes=wire_limit
            )
            # Cog frees its prediction slot a moment after answering: a request right behind the last
            # one can get 409 "At capacity". That is Cog's busy signal, not the model failing.
            if status != 409 or time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        total = time.perf_counter() - start
        body = parse_object(data)
        state = body.get("status")
        if status != 200 or state != "succeeded":
            error = body.get("error") or body.get("detail") or body
            logs = str(body.get("logs") or "").strip() or None
            raise AdapterError(
                f"POST /predictions answered {status}, prediction {state or 'not run'}: {error}",
                status if status != 200 else 500,
                logs,
            )
        try:
            output = decode_cog_output(body.get("output"), self.options)
        except DecodeError as exc:
            raise AdapterError(f"generate returned an output that cannot be decoded ({len(data)} bytes): {exc}") from None
        if max_bytes is not None and output.nbytes > max_bytes:
            raise AdapterError(
                f"generate output refused: the decoded output is {output.nbytes} bytes, over the limit of {max_bytes} "
                "(expect.max_output_bytes)"
            )
        predict_time = _mapping(body.get("metrics")).get("predict_time")
        seconds, note = server_time(predict_time, total, len(data), "Cog metrics.predict_time")
        if predict_time is None:
            seconds, note = total, None
        return Generation(
            output=output, server_seconds=seconds, total_seconds=total, peak_rss_bytes=None, nbytes=len(data), timing_note=note
        )

    def fit(
        self,
        table: np.ndarray[Any, Any],
        columns: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> float:
        raise NotSupported("the cog protocol has no fit: tabular models need protocol: native")
