"""The GPU/CPU/memory ledger with an injected 2-GPU inventory: packing, waiting, oversize, crashes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from pytest_vdbench.runtime.ledger import DoesNotFit, Inventory, Ledger, Need, ReservationTimeout

GiB = 2**30
TWO_GPUS = Inventory(gpus=(("GPU-a", 80 * GiB), ("GPU-b", 24 * GiB)), cpus=16, memory=128 * GiB)


def ledger(tmp_path: Path, inv: Inventory = TWO_GPUS) -> Ledger:
    return Ledger(tmp_path / "ledger.json", inv, poll=0.02)


def test_models_that_fit_share_a_gpu_best_fit(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    small = led.reserve(Need(gpus=1, gpu_memory=20 * GiB), timeout=1, label="svd")
    assert small.gpu_uuids == ("GPU-b",)  # best fit: the 24 GiB card, keeping the 80 GiB one free
    big = led.reserve(Need(gpus=1, gpu_memory=60 * GiB), timeout=1, label="cogvideox")
    assert big.gpu_uuids == ("GPU-a",)
    third = led.reserve(Need(gpus=1, gpu_memory=15 * GiB), timeout=1, label="ltx")
    assert third.gpu_uuids == ("GPU-a",) and third.sharing == {"GPU-a": 1}  # 80 - 60 = 20 GiB left
    assert third.concurrent == 2


def test_a_model_waits_until_memory_is_released(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    first = led.reserve(Need(gpus=1, gpu_memory=70 * GiB), timeout=1, label="wan")
    led.reserve(Need(gpus=1, gpu_memory=20 * GiB), timeout=1, label="svd")  # takes GPU-b
    threading.Timer(0.3, led.release, args=(first,)).start()
    start = time.monotonic()
    second = led.reserve(Need(gpus=1, gpu_memory=70 * GiB), timeout=5, label="wan2")
    assert second.gpu_uuids == ("GPU-a",) and 0.2 < second.waited_seconds < 3
    assert time.monotonic() - start >= 0.25


def test_waiting_times_out_naming_the_holders(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.reserve(Need(gpus=2, gpu_memory=20 * GiB), timeout=1, label="holder")
    held = r"within 0.2s \(needs 0 CPUs, 0.0 GiB memory, 1 GPU\(s\) with 70.0 GiB; held: holder \(pid \d+, 0 CPUs"
    with pytest.raises(ReservationTimeout, match=held):
        led.reserve(Need(gpus=1, gpu_memory=70 * GiB), timeout=0.2, label="late")


def test_oversize_model_does_not_fit_at_once(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    with pytest.raises(DoesNotFit, match=r"needs 1 GPU\(s\) with 100.0 GiB each; this host has GPU-a 80 GiB, GPU-b 24 GiB"):
        led.reserve(Need(gpus=1, gpu_memory=100 * GiB), timeout=60)
    with pytest.raises(DoesNotFit, match="needs 3 GPU"):
        led.reserve(Need(gpus=3, gpu_memory=GiB), timeout=60)
    with pytest.raises(DoesNotFit, match="needs 32 CPUs; this host has 16"):
        led.reserve(Need(cpus=32), timeout=60)


def test_unknown_gpu_memory_takes_a_whole_gpu(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    whole = led.reserve(Need(gpus=1), timeout=1)
    other = led.reserve(Need(gpus=1, gpu_memory=GiB), timeout=1)
    assert whole.gpu_uuids != other.gpu_uuids
    assert led.reserve(Need(gpus=1, gpu_memory=GiB), timeout=1).gpu_uuids == other.gpu_uuids  # shares the non-exclusive one
    with pytest.raises(ReservationTimeout):  # the exclusive GPU is never shared
        led.reserve(Need(gpus=2, gpu_memory=GiB), timeout=0.1)


def test_cpu_and_memory_sums_stay_within_the_host(tmp_path: Path) -> None:
    led = ledger(tmp_path, Inventory(gpus=(), cpus=2, memory=4 * GiB))
    a = led.reserve(Need(cpus=1, memory=3 * GiB), timeout=1)
    with pytest.raises(ReservationTimeout):
        led.reserve(Need(cpus=1, memory=2 * GiB), timeout=0.1)
    led.reserve(Need(cpus=1, memory=GiB), timeout=0.1)
    led.release(a)
    assert len(led.held()) == 1


def _hold_and_die(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    led = Ledger(Path(path), TWO_GPUS)
    led.reserve(Need(gpus=2, gpu_memory=20 * GiB), timeout=1, label="doomed-worker")
    ready.set()
    time.sleep(60)


def test_reservations_of_a_crashed_worker_are_released(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ready = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(target=_hold_and_die, args=(str(path), ready))
    proc.start()
    assert ready.wait(10)
    led = Ledger(path, TWO_GPUS, poll=0.02)
    assert [e["label"] for e in led.held().values()] == ["doomed-worker"]
    with pytest.raises(ReservationTimeout):
        led.reserve(Need(gpus=1, gpu_memory=70 * GiB), timeout=0.1)
    os.kill(proc.pid, 9)
    proc.join()
    assert led.reserve(Need(gpus=1, gpu_memory=70 * GiB), timeout=1).gpu_uuids == ("GPU-a",)
