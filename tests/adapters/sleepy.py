"""Adapters that sleep in generate() and count how many calls overlap (server concurrency tests)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from pytest_vdbench.adapter import ModelAdapter


class Sleepy(ModelAdapter):
    """Sleeps ``delay`` seconds per call; ``overlap`` is the most calls ever running at once."""

    def __init__(self, delay: float = 0.05, **options: Any) -> None:
        super().__init__(**options)
        self.delay = delay
        self.running = 0
        self.overlap = 0
        self._count = threading.Lock()

    def generate(self, prompt: str, **params: Any) -> Any:
        with self._count:
            self.running += 1
            self.overlap = max(self.overlap, self.running)
        try:
            time.sleep(self.delay)
        finally:
            with self._count:
                self.running -= 1
        return np.full((1, 3, 4, 4), self.overlap / 100.0, dtype=np.float32)


class SleepyThreadSafe(Sleepy):
    """The same model, declared safe to call from several threads at once."""

    thread_safe = True
