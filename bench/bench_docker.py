"""Docker runtime overhead (#3): harness vs. a plain script, and output transfer vs. raw loopback.

1. Per-model harness overhead: start the toy model's image, wait until ready, run GENERATIONS
   generate calls, remove the container; once through pytest-vdbench's DockerRuntime + AdapterClient,
   once through a plain script (`docker run -d` + urllib polling + the same HTTP calls + `docker rm
   -f`), same image, same limits, alternating, REPEATS times each. Target: ratio <= 1.05.
2. Output transfer: a 256 MiB float32 tensor from the container through the published 127.0.0.1
   port (client time minus the adapter's compute time), against raw TCP throughput of 256 MiB
   through the same kind of published port from the same image. Target: >= 50 %.

Needs a Docker engine and the vdbench/base:bookworm base (scripts/start-docker.sh; vdbench images
bootstrap). Run: ``python bench/bench_docker.py``.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import toy_manifest  # noqa: E402
from pytest_vdbench.manifest import load_manifest  # noqa: E402
from pytest_vdbench.protocols import builtin_protocols, ready_probe  # noqa: E402
from pytest_vdbench.protocols.native import AdapterClient  # noqa: E402
from pytest_vdbench.runtime.docker import DockerRuntime, build_model_image  # noqa: E402
from pytest_vdbench.runtime.images import connect_docker  # noqa: E402

REPEATS = 5
GENERATIONS = 5
CASE = {"frames": 8, "height": 32, "width": 32}
BIG = {"frames": 16, "height": 1024, "width": 1365}  # 16*3*1024*1365*4 bytes = 256 MiB
RAW_SERVER = """
import socket
payload = bytes(256 * 1024 * 1024)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080)); srv.listen(1)
print("listening", flush=True)
while True:
    conn, _ = srv.accept(); conn.sendall(payload); conn.close()
"""


def spec_for(tmp: Path, name: str, memory: str) -> object:
    doc = toy_manifest(name, resources={"cpus": 1, "memory": memory}, timeouts={"startup": "60s", "generate": "120s"})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_manifest(path, ROOT)[0]


def harness_once(runtime: DockerRuntime, spec: object, params: dict[str, int]) -> float:
    start = time.perf_counter()
    instance = runtime.start(spec)  # type: ignore[arg-type]
    client = AdapterClient(instance.endpoint, timeout=120)
    for i in range(GENERATIONS):
        client.generate("a fox", seed=i, params=params)
    instance.stop()
    instance.removed()  # stop() gives the resources back once the processes are gone; time it until the engine removed it
    return time.perf_counter() - start


def plain_once(image: str, params: dict[str, int]) -> float:
    start = time.perf_counter()
    cid = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "-p",
            "127.0.0.1::8080",
            "--user",
            "10001:10001",
            "--memory",
            "512m",
            "--cpus",
            "1",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-e",
            'VDBENCH_OPTIONS={"fault": "none"}',
            image,
            "python",
            "-m",
            "pytest_vdbench.adapter",
            "serve",
            "toy:ToyVideo",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        port = subprocess.run(["docker", "port", cid, "8080/tcp"], capture_output=True, text=True, check=True).stdout
        url = f"http://127.0.0.1:{port.strip().rsplit(':', 1)[1]}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        for i in range(GENERATIONS):
            body = json.dumps({"prompt": "a fox", "seed": i, "params": params}).encode()
            req = urllib.request.Request(f"{url}/v1/generate", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                resp.read()
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
    return time.perf_counter() - start


def raw_throughput(image: str) -> float:
    cid = subprocess.run(
        ["docker", "run", "-d", "-p", "127.0.0.1::8080", "--user", "10001:10001", image, "python", "-c", RAW_SERVER],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        port = int(
            subprocess.run(["docker", "port", cid, "8080/tcp"], capture_output=True, text=True, check=True)
            .stdout.strip()
            .rsplit(":", 1)[1]
        )
        while b"listening" not in subprocess.run(["docker", "logs", cid], capture_output=True, check=True).stdout:
            time.sleep(0.05)
        rates = []
        buf = bytearray(256 * 1024 * 1024)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                view, got, start = memoryview(buf), 0, time.perf_counter()
                while got < len(buf):
                    n = sock.recv_into(view[got:])
                    if not n:
                        break
                    got += n
                rates.append(got / (time.perf_counter() - start))
        return statistics.median(rates)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)


def main() -> None:
    client = connect_docker()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = spec_for(work, "benchtoy", "512m")
        image = build_model_image(client, spec, work / "logs").image  # type: ignore[arg-type]
        assert image is not None
        runtime = DockerRuntime(None, work, protocols=builtin_protocols(), ready_probe=ready_probe)
        harness, plain = [], []
        for _ in range(REPEATS):
            plain.append(plain_once(image, CASE))
            harness.append(harness_once(runtime, spec, CASE))
        h, p = statistics.median(harness), statistics.median(plain)
        print(f"per-model run (start -> ready -> {GENERATIONS} generations -> removed), median of {REPEATS}:")
        print(f"  plain docker run + HTTP script: {p:.3f}s   pytest-vdbench DockerRuntime: {h:.3f}s")
        print(f"  overhead ratio harness/plain: {h / p:.3f} (target <= 1.05)")

        big = spec_for(work, "benchbig", "3g")
        build_model_image(client, big, work / "logs")  # type: ignore[arg-type]
        instance = runtime.start(big)  # type: ignore[arg-type]
        try:
            ac = AdapterClient(instance.endpoint, timeout=300)
            transfers = []
            for i in range(3):
                gen = ac.generate("big", seed=i, params=BIG)
                transfers.append(gen.nbytes / (gen.total_seconds - gen.server_seconds))
        finally:
            instance.stop()
        raw = raw_throughput(image)
        ours = statistics.median(transfers)
        print(f"256 MiB output transfer through 127.0.0.1 port: {ours / 1e9:.2f} GB/s (binary safetensors)")
        print(f"raw TCP loopback through a published port, same image: {raw / 1e9:.2f} GB/s")
        print(f"  transfer ratio ours/raw: {ours / raw:.0%} (target >= 50 %)")
        runtime.close()


if __name__ == "__main__":
    main()
