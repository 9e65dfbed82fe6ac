"""The adapter server under hostile neighbours (#17): slowloris, a generate flood and big uploads at once.

An adapter server (``python -m pytest_vdbench.adapter serve``, the process the images run) serves
tests/adapters/sleepy.py:Sleepy (each generate sleeps 20 ms, one at a time) on 127.0.0.1. Against it,
all at the same time and bounded in count and time:

* SLOWLORIS connections that each send a request head one byte a second, reconnecting whenever
  the server cuts them, for SLOWLORIS_SECONDS;
* GENERATES concurrent ``POST /v1/generate`` calls, one connection each, all started together;
* UPLOADS concurrent ``POST /v1/fit`` bodies of UPLOAD_MIB each (zeros, not safetensors: each is
  read in full and spooled to a temp file, then answered 400).

Printed: health latency (idle baseline, then worst and median under load and the ratio), the
generate outcomes (statuses, connection resets), how often the slow connections were cut, and
the server's peak threads and RSS against its idle RSS. Nothing here asserts a time; the process
exits 1 when a target is missed (health over 1 s, a reset, a failed generate, RSS over
idle + 64 MiB).

Run: ``python bench/bench_server.py`` (about 30 s; no Docker needed).
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWLORIS = 200
SLOWLORIS_SECONDS = 20.0
GENERATES = 200
UPLOADS = 3
UPLOAD_MIB = 100
RSS_SLACK = 64 << 20


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "adapters")])}
    cmd = [sys.executable, "-m", "pytest_vdbench.adapter", "serve", "sleepy:Sleepy", "--port", "0"]
    proc = subprocess.Popen(cmd, env={**env, "VDBENCH_OPTIONS": '{"delay": 0.02}'}, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        match = re.search(r"serving \S+ on [\d.]+:(\d+)", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining its log
            return proc, int(match.group(1))
    proc.kill()
    raise SystemExit("the adapter server did not start within 30 s")


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0]) * (1024 if key == "VmRSS" else 1)
    return out


def health(port: int) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health/ready")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    finally:
        conn.close()
    return time.perf_counter() - started


class Load:
    """The three loads, each in its own threads, with their counters."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.cut = 0
        self.statuses: dict[int, int] = {}
        self.resets = 0
        self.errors: list[str] = []
        self.uploads: list[int] = []
        self.lock = threading.Lock()

    def slowloris(self) -> None:
        socks: list[socket.socket] = []
        ends = time.monotonic() + SLOWLORIS_SECONDS
        head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 10_000
        sent = 0
        try:
            while time.monotonic() < ends:
                while len(socks) < SLOWLORIS:
                    socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
                for sock in list(socks):
                    try:
                        sock.send(head[sent % len(head) : sent % len(head) + 1])
                    except OSError:  # the server cut it (408 then close): count it, open a new one
                        self.cut += 1
                        socks.remove(sock)
                        sock.close()
                sent += 1
                self.stop.wait(1.0)
        finally:
            for sock in socks:
                sock.close()

    def generate(self, go: threading.Event) -> None:
        go.wait()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/v1/generate", body=b'{"prompt": "x", "seed": 1}')
            resp = conn.getresponse()
            resp.read()
            with self.lock:
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
        except ConnectionResetError:
            with self.lock:
                self.resets += 1
        except OSError as exc:
            self.errors.append(repr(exc))
        finally:
            conn.close()

    def upload(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        body = b"\0" * (UPLOAD_MIB << 20)
        try:
            conn.request("POST", "/v1/fit", body=body)
            resp = conn.getresponse()
            resp.read()
            self.uploads.append(resp.status)
        finally:
            conn.close()


def main() -> int:
    proc, port = start_server()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health(port)
                break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline, "never ready"
                time.sleep(0.05)
        idle = [health(port) for _ in range(20)]
        idle_rss = proc_status(proc.pid)["VmRSS"]
        load = Load(port)
        go = threading.Event()
        threads = [threading.Thread(target=load.slowloris)]
        threads += [threading.Thread(target=load.generate, args=(go,)) for _ in range(GENERATES)]
        threads += [threading.Thread(target=load.upload) for _ in range(UPLOADS)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)  # let the slow connections pile up first
        go.set()
        under: list[float] = []
        peak_rss, peak_threads = idle_rss, 0
        ends = time.monotonic() + SLOWLORIS_SECONDS
        while time.monotonic() < ends:
            under.append(health(port))
            status = proc_status(proc.pid)
            peak_rss, peak_threads = max(peak_rss, status["VmRSS"]), max(peak_threads, status["Threads"])
            time.sleep(0.1)
        load.stop.set()
        for thread in threads:
            thread.join(120)
    finally:
        proc.terminate()
        proc.wait(10)
    return report(idle, under, idle_rss, peak_rss, peak_threads, load)


def report(idle: list[float], under: list[float], idle_rss: int, peak_rss: int, threads: int, load: Load) -> int:
    base = statistics.median(idle)
    print(f"health (GET /health/ready) idle: median {base * 1000:.1f} ms over {len(idle)}")
    print(
        f"health under load: {len(under)} probes, median {statistics.median(under) * 1000:.1f} ms, "
        f"worst {max(under) * 1000:.1f} ms ({max(under) / base:.0f}x idle median)"
    )
    print(f"slowloris: {SLOWLORIS} connections held for {SLOWLORIS_SECONDS:g}s, cut by the server {load.cut} times")
    print(f"generates: {GENERATES} at once -> statuses {load.statuses}, resets {load.resets}, errors {load.errors[:3]}")
    print(f"uploads: {UPLOADS} x {UPLOAD_MIB} MiB -> statuses {sorted(load.uploads)}")
    print(f"server: peak {threads} threads, RSS idle {idle_rss >> 20} MiB, peak {peak_rss >> 20} MiB")
    missed = []
    if max(under) >= 1.0:
        missed.append("health answered in 1 s or more")
    if load.resets or load.errors or load.statuses != {200: GENERATES}:
        missed.append("a generate failed or was reset")
    if peak_rss > idle_rss + RSS_SLACK:
        missed.append(f"RSS grew past idle + {RSS_SLACK >> 20} MiB")
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
