"""Pika (closed text-to-video model) behind the vdbench adapter contract, through its hosted API.

The shape every hosted, closed model takes here: the container holds no weights, only a client.
Pika publishes no first-party REST API; its models are served through fal.ai's queue API, which
this adapter speaks with the standard library only (``urllib``), in three steps per generation:

1. **request**: ``POST {base}/{model}`` with the JSON input (``prompt``, ``seed``, ``resolution``,
   ``duration``, ``aspect_ratio``, ``negative_prompt``) and the header ``Authorization: Key <key>``;
   the answer names the ``request_id`` and its ``status_url`` / ``response_url``;
2. **poll**: ``GET status_url`` every ``poll_interval`` seconds until ``status`` is ``COMPLETED``
   (``IN_QUEUE`` and ``IN_PROGRESS`` keep waiting; an ``error`` or an unknown status fails; so
   does waiting longer than ``timeout``), then ``GET response_url`` for the result
   ``{"video": {"url": ...}}``;
3. **download**: ``GET`` the video URL (an MP4 on the provider's CDN; the API key is *not* sent
   there, only to the API host) and decode it with PyAV into uint8 ``[frames, height, width, 3]``,
   the adapter contract's compact video layout (a 5 s 720p clip is ~330 MB as uint8, 4x that as
   float32).

Credentials and endpoint come from the environment, never from the manifest or the image:

* ``PIKA_API_KEY`` (required; the manifest's ``requires.env`` skips the model when it is unset,
  so without a key no request is ever made);
* ``PIKA_API_BASE`` (optional, default ``https://queue.fal.run``: point it at a proxy or a local
  fake server for tests).

The key is never logged or reported (metadata says only whether it is set). Options (manifest
``options``): ``model`` (default ``fal-ai/pika/v2.2/text-to-video``), ``poll_interval`` (s),
``timeout`` (s, whole generation), ``request_timeout`` (s, one HTTP call).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_vdbench.adapter import ModelAdapter

DEFAULT_BASE = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/pika/v2.2/text-to-video"
DEFAULTS: dict[str, Any] = {"resolution": "720p", "duration": 5, "aspect_ratio": "16:9", "negative_prompt": ""}
WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
MAX_DOWNLOAD = 512 * 1024**2  # refuse videos larger than this (bytes)


class PikaError(RuntimeError):
    """The hosted API refused, failed or timed out; the message says which step and why."""


def decode_video(data: bytes) -> np.ndarray:
    """MP4 (or any container FFmpeg reads) bytes -> uint8 ``[frames, height, width, 3]`` (RGB), via PyAV."""
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise PikaError("the downloaded video has no frames")
    return np.stack(frames).astype(np.uint8, copy=False)


class Pika(ModelAdapter):
    """Pika text-to-video via fal.ai's queue API: request -> poll -> download (stdlib urllib)."""

    libraries = ("numpy", "av")

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        poll_interval: float = 2.0,
        timeout: float = 900.0,
        request_timeout: float = 60.0,
        **options: Any,
    ) -> None:
        if options:
            raise TypeError(f"unknown options {sorted(options)}; Pika takes model, poll_interval, timeout, request_timeout")
        super().__init__(model=model, poll_interval=poll_interval, timeout=timeout, request_timeout=request_timeout)
        self.model = model.strip("/")
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.request_timeout = float(request_timeout)
        self.base = ""
        self._key = ""
        self.decode: Callable[[bytes], np.ndarray] = decode_video
        self.sleep: Callable[[float], None] = time.sleep

    def load(self) -> None:
        key = os.environ.get("PIKA_API_KEY", "").strip()
        if not key:
            raise PikaError("PIKA_API_KEY is not set: the hosted Pika API needs a key (fal.ai)")
        base = os.environ.get("PIKA_API_BASE", DEFAULT_BASE).rstrip("/")
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            raise PikaError(f"PIKA_API_BASE must be an http(s) URL, got {base!r}")
        self._key, self.base = key, base
        if self.decode is decode_video:
            import av  # noqa: F401  (fail readiness now, not at the first generation)

    # -- HTTP ------------------------------------------------------------------------------------

    def _api_host(self) -> str:
        return urllib.parse.urlsplit(self.base).netloc

    def _call(self, method: str, url: str, body: Any = None, *, limit: int = 16 * 1024**2) -> bytes:
        """One HTTP call; the key goes only to the API host. Errors name the step's URL (not the key)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise PikaError(f"refusing a non-http(s) URL from the API: {url!r}")
        headers = {"Accept": "application/json", "User-Agent": "pytest-vdbench-pika/1"}
        if parts.netloc == self._api_host():
            headers["Authorization"] = f"Key {self._key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:
                payload = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            raise PikaError(f"{method} {url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise PikaError(f"{method} {url} failed: {exc}") from None
        if len(payload) > limit:
            raise PikaError(f"{method} {url}: response larger than {limit} bytes")
        return payload

    def _json(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        raw = self._call(method, url, body)
        try:
            value = json.loads(raw)
        except ValueError:
            raise PikaError(f"{method} {url}: not JSON: {raw[:200]!r}") from None
        if not isinstance(value, dict):
            raise PikaError(f"{method} {url}: expected a JSON object, got {type(value).__name__}")
        return value

    # -- the three steps -------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Step 1: queue the request; returns the queue's answer with ``status_url`` and ``response_url``."""
        answer = self._json("POST", f"{self.base}/{self.model}", payload)
        request_id = answer.get("request_id")
        if not request_id:
            raise PikaError(f"the queue answered without a request_id: {answer}")
        prefix = f"{self.base}/{self.model}/requests/{request_id}"
        answer.setdefault("status_url", f"{prefix}/status")
        answer.setdefault("response_url", prefix)
        return answer

    def wait(self, queued: dict[str, Any]) -> dict[str, Any]:
        """Step 2: poll until COMPLETED, then fetch the result (``{"video": {"url": ...}}``)."""
        deadline = time.monotonic() + self.timeout
        while True:
            status = self._json("GET", str(queued["status_url"]))
            state = str(status.get("status", ""))
            if status.get("error"):
                raise PikaError(f"request {queued['request_id']} failed: {status['error']}")
            if state == "COMPLETED":
                break
            if state not in WAITING:
                raise PikaError(f"request {queued['request_id']}: unexpected status {state!r}")
            if time.monotonic() >= deadline:
                raise PikaError(f"request {queued['request_id']} not done after {self.timeout:.0f}s (status {state})")
            self.sleep(self.poll_interval)
        result = self._json("GET", str(queued["response_url"]))
        video = result.get("video")
        if not isinstance(video, dict) or not video.get("url"):
            raise PikaError(f"request {queued['request_id']}: the result has no video URL: {result}")
        return result

    def download(self, url: str) -> np.ndarray:
        """Step 3: fetch the video (without the key unless it is on the API host) and decode it."""
        return self.decode(self._call("GET", url, limit=MAX_DOWNLOAD))

    # -- adapter contract ------------------------------------------------------------------------

    def generate(self, prompt: str, **params: Any) -> Any:
        if not self._key:
            raise PikaError("generate() called before load()")
        seed = params.pop("seed", None)
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}; Pika accepts seed, {', '.join(DEFAULTS)}")
        payload: dict[str, Any] = {"prompt": prompt, **DEFAULTS, **params}
        if not payload["negative_prompt"]:
            del payload["negative_prompt"]
        if seed is not None:
            payload["seed"] = int(seed)
        queued = self.submit(payload)
        result = self.wait(queued)
        return self.download(str(result["video"]["url"]))

    def get_requirements(self) -> dict[str, Any]:
        # a client only: decoding a 5 s 720p clip holds ~330 MB of uint8 frames (plus the MP4)
        return {"gpus": 0, "gpu_memory": 0, "memory": 1024**3, "cpus": 1}

    def health_check(self) -> bool:
        return bool(self._key)

    def metadata(self) -> dict[str, Any]:
        return {
            "hosted": True,
            "provider": "fal.ai queue API",
            "api_base": self.base or None,
            "model": self.model,
            "api_key": "set" if self._key else "missing",
            "defaults": dict(DEFAULTS),
        }
