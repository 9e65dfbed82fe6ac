"""A tiny numpy video model for the plugin's own tests, with switchable faults.

``options: {fault: NAME}`` in a manifest breaks it in one way; each fault must make exactly the
generated test that checks it fail (see tests/test_conformance.py).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from pytest_vdbench.adapter import ModelAdapter

FAULTS = (
    "none",
    "shape",
    "dtype",
    "nan",
    "range",
    "nondeterministic",
    "load_crash",
    "never_ready",
    "slow",
    "requirements",
    "generate_crash",
    "exit",
    "constant",
    "ignores_prompt",
    "memory",
    "leak",
    "flaky",
    "malformed",
    "oversized",
    "swapped_frames",
    "chatty",
    "caching",
    "ignores_seed",
    "cheap_repeats",
)


class ToyVideo(ModelAdapter):
    """Smoothly panning colour gradients whose phase depends on the prompt and seed."""

    def __init__(self, fault: str = "none", delay: float = 0.0, slowdown: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault
        self.delay = delay * (1 + slowdown)  # slowdown: an injected regression (bench/bench_compare.py)
        self.calls = 0
        self._answers: dict[Any, Any] = {}
        self._seen: dict[Any, int] = {}

    def load(self) -> None:
        self._leak: list[Any] = []
        if self.fault == "malformed":
            # answer with a truncated safetensors body, as a broken serving stack would
            from pytest_vdbench.adapter import server

            real = server.encode_safetensors
            server.encode_safetensors = lambda tensors, meta=None: [b"".join(bytes(b) for b in real(tensors, meta))[:-7]]  # type: ignore[assignment]
        if self.fault == "load_crash":
            raise RuntimeError("weights file is corrupt (toy load_crash)")
        if self.fault == "never_ready":
            time.sleep(3600)

    def get_requirements(self) -> dict[str, Any]:
        if self.fault == "requirements":
            return {"gpus": 2, "gpu_memory": 0, "memory": 64 * 1024**3, "cpus": 1}
        return {"gpus": 0, "gpu_memory": 0, "memory": 64 * 1024**2, "cpus": 1}

    def generate(self, prompt: str, **params: Any) -> Any:
        key = (prompt, repr(sorted(params.items())))
        if self.fault == "caching" and key in self._answers:
            return self._answers[key]  # the repeated request is answered from a cache
        self._seen[key] = self._seen.get(key, 0) + 1
        video = self._generate(prompt, **params)
        if self.fault == "caching":
            time.sleep(1.0)  # what the real computation costs: a loaded host stretches a cached answer to 50+ ms
            self._answers[key] = video
        if self.fault == "cheap_repeats" and self._seen[key] > 2:
            video = np.clip(video * 0.9 + 0.05, 0, 1).astype(np.float32)  # a cheaper, different answer
        return video

    def _generate(self, prompt: str, **params: Any) -> Any:
        self.calls += 1
        seed = 0 if self.fault == "ignores_seed" else params.get("seed") or 0
        frames, height, width = int(params.get("frames", 4)), int(params.get("height", 16)), int(params.get("width", 16))
        if self.fault == "generate_crash":
            raise RuntimeError("CUDA error: an illegal memory access was encountered (toy generate_crash)")
        if self.fault == "exit":
            os._exit(3)
        if self.fault == "chatty":  # 2 MiB of log lines per call: fills an engine's disk without a cap
            sys.stderr.write(("debug: tensor stats " + "." * 1000 + "\n") * 2048)
            sys.stderr.flush()
        if self.fault == "slow" or self.delay:
            if self.delay:  # an event tests wait on ("mid-generation") instead of guessing with a sleep
                print(f"toy: generating, {self.delay:g} s", flush=True)
            time.sleep(self.delay or 0.5)
        if self.fault == "flaky" and self.calls % 2 == 0:
            raise RuntimeError("upstream returned 503 (toy flaky: every second call fails)")
        if self.fault == "leak":
            self._leak.append(np.ones(48 * 1024**2 // 8))  # 48 MiB kept per call
        if self.fault == "oversized":
            frames *= 16
        if self.fault == "memory":
            self._hog = [np.ones(64 * 1024**2 // 8) for _ in range(4)]
        key = 0 if self.fault == "ignores_prompt" else sum(prompt.encode())
        phase = (seed * 7919 + key) % 997 / 997.0
        if self.fault == "nondeterministic":
            phase += self.calls * 0.01
        t = np.arange(frames, dtype=np.float32)[:, None, None, None]
        c = np.arange(3, dtype=np.float32)[None, :, None, None]
        y = np.arange(height, dtype=np.float32)[None, None, :, None]
        x = np.arange(width, dtype=np.float32)[None, None, None, :]
        video = 0.5 + 0.45 * np.sin(2 * np.pi * (x / width + y / (2 * height) + t * 0.05 + c / 3 + phase))
        video = video.astype(np.float32)
        if self.fault == "swapped_frames":
            video = video[np.r_[0:frames:2, 1:frames:2]]  # frames out of order
        if self.fault == "constant":
            video = np.full_like(video, 0.5)
        if self.fault == "shape":
            video = video[:, :, :, : width // 2]
        if self.fault == "dtype":
            video = video.astype(np.float64)
        if self.fault == "nan":
            video[0, 0, 0, 0] = np.nan
        if self.fault == "range":
            video = video * 2.0
        return video
