"""A cross-process ledger of GPUs, CPUs and memory held by running models (pytest-xdist safe).

Every worker of a run opens the same JSON file under a file lock. A model reserves what its
manifest needs before its container starts and releases it when the container is removed:

* GPUs by UUID: models that fit share a GPU (memory is summed per GPU); a model that gives no
  ``gpu_memory`` takes whole GPUs; a model bigger than every GPU raises ``DoesNotFit`` at once
  (the caller skips it saying so); otherwise the caller waits until enough is released.
* CPUs and memory: the sum of running containers' limits stays within the host.

Entries carry the owner's PID and are dropped when that process is gone, so a crashed xdist
worker never holds resources for ever. The inventory is injected (NVML in production, a fake in
tests), so all of this is tested without a GPU.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["DoesNotFit", "Inventory", "Ledger", "Need", "Reservation", "ReservationTimeout"]


@dataclass(frozen=True)
class Inventory:
    """What the host has: GPUs as (uuid, memory bytes), CPUs, memory bytes."""

    gpus: tuple[tuple[str, int], ...]
    cpus: float
    memory: int


@dataclass(frozen=True)
class Need:
    """What one model needs (from its manifest's resources)."""

    gpus: int = 0
    gpu_memory: int = 0
    cpus: float = 0.0
    memory: int = 0


@dataclass(frozen=True)
class Reservation:
    """Granted resources; ``gpu_uuids`` go to docker ``device_requests`` / CUDA_VISIBLE_DEVICES."""

    id: str
    gpu_uuids: tuple[str, ...] = ()
    waited_seconds: float = 0.0
    concurrent: int = 0  # other reservations alive when granted (contention note for timings)
    sharing: dict[str, int] = field(default_factory=dict)  # GPU uuid -> other models on it


class DoesNotFit(Exception):
    """The need exceeds the whole inventory: waiting would never help."""


class ReservationTimeout(Exception):
    """Resources did not free up in time."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """Reserve and release against one inventory, shared by every process using ``path``."""

    def __init__(self, path: Path, inventory: Inventory, *, poll: float = 0.05) -> None:
        self.path = path
        self.inventory = inventory
        self.poll = poll
        self._lock = FileLock(str(path) + ".lock")

    # -- storage ---------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in entries.items() if _alive(int(v["pid"]))}  # drop crashed owners

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, self.path)

    def held(self) -> dict[str, dict[str, Any]]:
        """Live reservations (for reports and tests)."""
        with self._lock:
            return self._load()

    # -- policy ----------------------------------------------------------------------------
    def check_fits_at_all(self, need: Need) -> None:
        """Raise DoesNotFit when ``need`` exceeds the empty inventory."""
        inv = self.inventory
        if need.gpus:
            big_enough = [g for g in inv.gpus if g[1] >= need.gpu_memory]
            if len(big_enough) < need.gpus:
                have = ", ".join(f"{u} {m / 2**30:.0f} GiB" for u, m in inv.gpus) or "no GPU"
                raise DoesNotFit(f"needs {need.gpus} GPU(s) with {need.gpu_memory / 2**30:.1f} GiB each; this host has {have}")
        if need.cpus > inv.cpus:
            raise DoesNotFit(f"needs {need.cpus:g} CPUs; this host has {inv.cpus:g}")
        if need.memory > inv.memory:
            raise DoesNotFit(f"needs {need.memory / 2**30:.1f} GiB memory; this host has {inv.memory / 2**30:.1f} GiB")

    def _try(self, need: Need, entries: dict[str, dict[str, Any]]) -> tuple[str, ...] | None:
        inv = self.inventory
        if sum(float(e["cpus"]) for e in entries.values()) + need.cpus > inv.cpus + 1e-9:
            return None
        if sum(int(e["memory"]) for e in entries.values()) + need.memory > inv.memory:
            return None
        if not need.gpus:
            return ()
        used: dict[str, int] = {u: 0 for u, _ in inv.gpus}
        exclusive: set[str] = set()
        for e in entries.values():
            for u in e["gpus"]:
                used[u] += int(e["gpu_memory"])
                if not e["gpu_memory"]:
                    exclusive.add(u)
        candidates = []
        for u, total in inv.gpus:
            if u in exclusive:
                continue
            if need.gpu_memory == 0:  # unknown footprint: the whole GPU, alone
                if used[u] == 0 and not any(u in e["gpus"] for e in entries.values()):
                    candidates.append((total, u))
            elif total - used[u] >= need.gpu_memory:
                candidates.append((total - used[u] - need.gpu_memory, u))  # best fit: least left over
        if len(candidates) < need.gpus:
            return None
        return tuple(u for _, u in sorted(candidates)[: need.gpus])

    # -- API -------------------------------------------------------------------------------
    def reserve(self, need: Need, *, timeout: float, label: str = "") -> Reservation:
        """Block until ``need`` fits, then record it; DoesNotFit / ReservationTimeout otherwise."""
        self.check_fits_at_all(need)
        start = time.monotonic()
        while True:
            with self._lock:
                entries = self._load()
                gpus = self._try(need, entries)
                if gpus is not None:
                    rid = uuid.uuid4().hex
                    sharing = {u: sum(1 for e in entries.values() if u in e["gpus"]) for u in gpus}
                    entries[rid] = {
                        "pid": os.getpid(),
                        "label": label,
                        "gpus": list(gpus),
                        "gpu_memory": need.gpu_memory,
                        "cpus": need.cpus,
                        "memory": need.memory,
                        "since": time.time(),
                    }
                    self._save(entries)
                    return Reservation(rid, gpus, time.monotonic() - start, len(entries) - 1, sharing)
            if time.monotonic() - start > timeout:
                raise ReservationTimeout(
                    f"{label or 'model'}: resources did not free up within {timeout:g}s (needs {_describe_need(need)}; "
                    f"held: {'; '.join(_describe_holder(e) for e in entries.values()) or 'nothing'}); "
                    "raise --vdbench-reserve-timeout, or run fewer models at once"
                )
            time.sleep(self.poll)

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            entries = self._load()
            entries.pop(reservation.id, None)
            self._save(entries)

    @contextmanager
    def hold(self, need: Need, *, timeout: float, label: str = "") -> Iterator[Reservation]:
        reservation = self.reserve(need, timeout=timeout, label=label)
        try:
            yield reservation
        finally:
            self.release(reservation)


def _describe_need(need: Need) -> str:
    parts = [f"{need.cpus:g} CPUs", f"{need.memory / 2**30:.1f} GiB memory"]
    if need.gpus:
        parts.append(f"{need.gpus} GPU(s) with {need.gpu_memory / 2**30:.1f} GiB")
    return ", ".join(parts)


def _describe_holder(entry: dict[str, Any]) -> str:
    """``svd (pid 4711, 2 CPUs, 1.0 GiB memory, GPU-a, for 30s)``: who holds what, and since when."""
    held = f"{float(entry['cpus']):g} CPUs, {int(entry['memory']) / 2**30:.1f} GiB memory"
    if entry["gpus"]:
        held += ", " + "+".join(entry["gpus"])
    since = time.time() - float(entry.get("since", time.time()))
    return f"{entry['label'] or '?'} (pid {entry['pid']}, {held}, for {since:.0f}s)"


def inventory_from_host(gpus: Sequence[tuple[str, int]], cpus: float, memory: int) -> Inventory:
    """Build an Inventory from probed host facts (see host.probe_host)."""
    return Inventory(tuple(gpus), cpus, memory)
