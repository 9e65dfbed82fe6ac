"""RefVideo with an injected slowdown, for bench/bench_compare.py's A/B pairs (not a zoo model)."""

from __future__ import annotations

import time
from typing import Any

from refvideo import RefVideo


class SlowedRefVideo(RefVideo):
    """The reference model, then a sleep of ``slowdown`` x the call's own compute time (0.3: 30 % slower)."""

    def __init__(self, slowdown: float = 0.3, **options: Any) -> None:
        super().__init__(**options)
        self.slowdown = slowdown

    def generate(self, prompt: str, **params: Any) -> Any:
        start = time.perf_counter()
        out = super().generate(prompt, **params)
        time.sleep(self.slowdown * (time.perf_counter() - start))
        return out
