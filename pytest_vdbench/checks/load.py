"""The throughput scenario: concurrent clients at each level of ``load.concurrency`` (Triton perf_analyzer style).

Each level sends ``load.requests`` requests (or as many as fit in ``load.duration``) from that many
client threads at once, each starting its next request as soon as its last one answered
(closed loop). Latency is the round trip; the server's own compute time (native
``X-Vdbench-Seconds``) separates queueing (waiting for the model, e.g. behind the SDK server's
lock) from compute. A busy answer (409, 429, 503: Cog's one-prediction-at-a-time, MLServer's
back-pressure) is counted, not raised.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_vdbench.endpoint import AdapterError, Generation
from pytest_vdbench.timing import percentile

__all__ = ["BUSY_STATUSES", "LevelResult", "run_level"]

#: answers that mean "busy, try later" rather than "broken"
BUSY_STATUSES = (409, 429, 503)


@dataclass
class LevelResult:
    """What one concurrency level measured."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)  # round trips of the successful requests
    compute: list[float] = field(default_factory=list)  # the server's own seconds of each
    busy: Counter[int] = field(default_factory=Counter)  # status -> count of busy answers
    errors: list[str] = field(default_factory=list)  # other failures (each fails the test)
    wall_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Successful outputs per second over the level's wall time."""
        return len(self.latencies) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        lat = self.latencies
        queue = [max(0.0, t - c) for t, c in zip(self.latencies, self.compute, strict=True)]
        pct = {f"p{q}": percentile(lat, q) if lat else None for q in (50, 90, 99)}
        return {
            "concurrency": self.concurrency,
            "requests": len(lat),
            "throughput_per_second": self.throughput,
            "outputs_per_hour": self.throughput * 3600,
            "latency_seconds": pct,
            "compute_p50_seconds": percentile(self.compute, 50) if self.compute else None,
            "queue_p50_seconds": percentile(queue, 50) if queue else None,
            "busy": {str(k): v for k, v in sorted(self.busy.items())},
            "errors": len(self.errors),
            "wall_seconds": self.wall_seconds,
        }


def run_level(call: Callable[[], Generation], concurrency: int, requests: int, duration: float) -> LevelResult:
    """Send ``requests`` calls from ``concurrency`` threads at once, stopping early after ``duration`` seconds."""
    result = LevelResult(concurrency)
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + duration
    start_line = threading.Barrier(concurrency)

    def client() -> None:
        start_line.wait()  # all clients start together (Offline: everything at once)
        while True:
            with lock:
                if remaining[0] <= 0 or time.monotonic() >= deadline:
                    return
                remaining[0] -= 1
            try:
                gen = call()
            except AdapterError as exc:
                with lock:
                    if exc.status in BUSY_STATUSES:
                        result.busy[exc.status] += 1
                    else:
                        result.errors.append(str(exc).splitlines()[0])
                continue
            with lock:
                result.latencies.append(gen.total_seconds)
                result.compute.append(min(gen.server_seconds, gen.total_seconds))

    threads = [threading.Thread(target=client, name=f"vdbench-load-{i}", daemon=True) for i in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_seconds = time.perf_counter() - began
    return result
