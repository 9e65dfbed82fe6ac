"""What a JSON protocol costs in output transfer (#10): Cog's data-URL files and OIP v2's JSON tensors
against the native adapter's binary safetensors, same generator, same machine, same run.

The same NumPy video generator (containers/cog-example/toyvideo.py) runs three ways, each in its own
container under the same limits: behind the native vdbench adapter (the baseline, built here from a
temporary context), behind Cog 0.23.1 (model_suites/protocols/cog-example.yaml) and behind MLServer
1.7.1 (oip-example.yaml). For each output size the harness's own clients generate REPEATS times;
printed per protocol: median round trip, median transfer (round trip minus the server's own
compute time, where the protocol reports one), bytes on the wire, and the ratios against native
measured in this run. Nothing here asserts a time.

Needs a Docker engine and the vdbench/base:bookworm base. Run: ``python bench/bench_protocols.py``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pytest_vdbench.manifest import ModelSpec, load_manifest  # noqa: E402
from pytest_vdbench.protocols import (  # noqa: E402
    builtin_protocols,
    client_for,
    ready_probe,
)
from pytest_vdbench.runtime.docker import DockerRuntime  # noqa: E402

REPEATS = 5
#: (frames, height, width) of float32 [F, 3, H, W] outputs: 1.5 MiB, 12 MiB, 48 MiB
SIZES = [(8, 128, 128), (16, 256, 256), (16, 512, 512)]
#: OIP's JSON numbers are ~5x the tensor and MLServer parses them slowly: the largest size is left out
OIP_MAX_BYTES = 16 * 2**20

NATIVE_ADAPTER = """
from pytest_vdbench.adapter import ModelAdapter
import toyvideo


class ToyVideo(ModelAdapter):
    def load(self):
        toyvideo.generate("warm-up", 0, frames=2, height=4, width=4)

    def generate(self, prompt, seed=None, **params):
        return toyvideo.generate(prompt, seed or 0, **params)
"""
NATIVE_DOCKERFILE = """ARG BASE=vdbench/base:bookworm
FROM ${BASE}
RUN pip install --no-cache-dir numpy==2.4.6
COPY .vdbench-sdk/ /opt/vdbench-sdk/
COPY toyvideo.py native_toy.py /app/
ENV PYTHONPATH=/opt/vdbench-sdk:/app
WORKDIR /app
USER 10001
"""


@dataclass
class Row:
    total: float
    transfer: float | None
    wire_bytes: int


def spec(work: Path, name: str, doc: dict[str, Any]) -> ModelSpec:
    doc = {
        **doc,
        "name": name,
        "resources": {"cpus": 1, "memory": "3g"},
        "timeouts": {"startup": "120s", "generate": "300s"},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_manifest(path, ROOT)[0]


def measure(runtime: DockerRuntime, model: ModelSpec, sizes: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], Row]:
    instance = runtime.start(model)
    rows: dict[tuple[int, int, int], Row] = {}
    try:
        client = client_for(model.manifest, instance.endpoint, timeout=300)
        for frames, height, width in sizes:
            params = {"frames": frames, "height": height, "width": width}
            client.generate("warm-up", seed=0, params=params)
            gens = [client.generate("a fox in the snow", seed=i, params=params) for i in range(REPEATS)]
            timed = model.manifest.protocol != "oip-v2"  # OIP reports no compute time
            rows[(frames, height, width)] = Row(
                total=statistics.median(g.total_seconds for g in gens),
                transfer=statistics.median(g.total_seconds - g.server_seconds for g in gens) if timed else None,
                wire_bytes=gens[0].nbytes,
            )
    finally:
        instance.stop()
    return rows


def main() -> None:
    examples = ROOT / "model_suites" / "protocols"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        context = work / "native-toy"
        context.mkdir()
        shutil.copy(ROOT / "containers" / "cog-example" / "toyvideo.py", context)
        (context / "native_toy.py").write_text(NATIVE_ADAPTER)
        (context / "Dockerfile").write_text(NATIVE_DOCKERFILE)
        case = [{"id": "x", "prompt": "x", "seed": 0}]
        native = spec(
            work,
            "bench-native",
            {"modality": "video", "adapter": "native_toy:ToyVideo", "image": {"context": str(context)}, "cases": case},
        )
        cog_doc = yaml.safe_load((examples / "cog-example.yaml").read_text())
        oip_doc = yaml.safe_load((examples / "oip-example.yaml").read_text())
        for doc in (cog_doc, oip_doc):
            doc["image"]["context"] = str(ROOT / doc["image"]["context"])
        cog = spec(work, "bench-cog", cog_doc)
        oip = spec(work, "bench-oip", oip_doc)
        runtime = DockerRuntime(None, work, protocols=builtin_protocols(), ready_probe=ready_probe)
        try:
            oip_sizes = [s for s in SIZES if s[0] * 3 * s[1] * s[2] * 4 <= OIP_MAX_BYTES]
            results = {
                "native (safetensors)": measure(runtime, native, SIZES),
                "cog (data URL, .npy)": measure(runtime, cog, SIZES),
                "oip-v2 (JSON tensor)": measure(runtime, oip, oip_sizes),
            }
        finally:
            runtime.close()
    base = results["native (safetensors)"]
    print(f"median of {REPEATS} generations per size; ratios against native measured in this run")
    for size in SIZES:
        tensor = size[0] * 3 * size[1] * size[2] * 4
        print(f"\noutput float32 [{size[0]}, 3, {size[1]}, {size[2]}] = {tensor / 2**20:.1f} MiB")
        b = base[size]
        for name, rows in results.items():
            if size not in rows:
                print(f"  {name:<22} not measured (JSON over {OIP_MAX_BYTES / 2**20:.0f} MiB)")
                continue
            r = rows[size]
            transfer = "n/a (no server time)" if r.transfer is None else f"{r.transfer * 1000:8.1f} ms"
            ratio_t = "" if r.transfer is None or b.transfer is None else f"  transfer x{r.transfer / b.transfer:.1f}"
            print(
                f"  {name:<22} round trip {r.total * 1000:8.1f} ms (x{r.total / b.total:.2f})  transfer {transfer}{ratio_t}"
                f"  wire {r.wire_bytes / 2**20:7.1f} MiB (x{r.wire_bytes / b.wire_bytes:.2f})"
            )


if __name__ == "__main__":
    main()
