"""What the output limit costs the harness in memory (#17): the client streams into one buffer.

A subprocess on 127.0.0.1 answers ``POST /v1/generate`` with a SIZE_MIB float32 safetensors output
(``Content-Length`` set). In this process the harness's client (``AdapterClient.generate`` with
``max_bytes`` = the output size) reads it; tracemalloc's peak during the call, over the output
size, is the figure. The baseline, measured in the same run against the same server, is the way
the client read before: ``http.client`` ``read(max_bytes + 1)`` then ``safetensors.numpy.load``.
Printed: both peaks as multiples of the output size. Target: the client <= 1.1x. Nothing asserts;
the process exits 1 when the target is missed.

Run: ``python bench/bench_client.py`` (about 10 s, no Docker).
"""

from __future__ import annotations

import gc
import http.client
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors

from pytest_vdbench.protocols.native import AdapterClient
from pytest_vdbench.runtime import Endpoint

SIZE_MIB = 256
TARGET = 1.1

SERVER = r"""
import re, socket, sys, json, struct
size = int(sys.argv[1])
header = json.dumps({"output": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}).encode()
header += b" " * (-len(header) % 8)
payload = struct.pack("<Q", len(header)) + header
zeros = bytes(1 << 20)
srv = socket.create_server(("127.0.0.1", 0))
print("port", srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):  # all of it: closing on unread bytes resets
            body += conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Vdbench-Seconds: 0.001\r\n\r\n" % (len(payload) + size)
        conn.sendall(head + payload)
        for _ in range(size >> 20):
            conn.sendall(zeros)
"""


def old_way(port: int, max_bytes: int) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/generate", body=b"{}", headers={"Content-Type": "application/json"})
        data = conn.getresponse().read(max_bytes + 1)
    finally:
        conn.close()
    return load_safetensors(data)["output"]


def peak_of(call: Callable[[], Any]) -> tuple[int, float]:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.asarray(result).nbytes == SIZE_MIB << 20
    del result
    return peak, seconds


def main() -> int:
    size = SIZE_MIB << 20
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(size)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        match = re.match(r"port (\d+)", proc.stdout.readline())
        assert match, "the fake server did not start"
        port = int(match.group(1))
        limit = size + 4096
        client = AdapterClient(Endpoint("127.0.0.1", port), timeout=60)
        new_peak, new_s = peak_of(lambda: client.generate("x", seed=0, params={}, max_bytes=limit).output)
        old_peak, old_s = peak_of(lambda: old_way(port, limit))
    finally:
        proc.kill()
        proc.wait()
    print(f"output {SIZE_MIB} MiB, limit = output size + 4 KiB")
    print(f"client (one preallocated buffer, zero-copy decode): peak {new_peak / size:.3f}x the output, {new_s:.2f}s")
    print(f"baseline (http.client read + safetensors.load):     peak {old_peak / size:.3f}x the output, {old_s:.2f}s")
    ok = new_peak <= TARGET * size
    print(f"target <= {TARGET}x: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
