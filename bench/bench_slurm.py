"""Slurm runtime (#15): 8 sleep-bound models, ``-n 8`` over Slurm vs. serial over Slurm, and Slurm's
per-model startup overhead over the local Docker runtime for the same image, all in one run.

Each model is the toy adapter sleeping DELAY seconds per generate call (about 6 calls per model).
The suite runs three times back to back on the test cluster (scripts/start-slurm.sh):
serial with ``--vdbench-runtime slurm``, ``-n 8`` with ``--vdbench-runtime slurm``, and serial with
``--vdbench-runtime docker`` (same images, generation not slowed: only startups are compared).
Overhead per model = median(submit→ready under Slurm) - median(docker run→ready), both from the
runs' report.json, serial runs only (no contention between startups).
Targets: -n 8 wall <= 0.35 x serial; overhead <= 2 s per model. Run: ``python bench/bench_slurm.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import toy_manifest  # noqa: E402

DELAY = 2.0
MODELS = 8
REGISTRY = os.environ.get("VDBENCH_REGISTRY", "127.0.0.1:5077")


def write_suite(folder: Path, delay: float) -> Path:
    folder.mkdir()
    for i in range(MODELS):
        options = {"fault": "none", "delay": delay}
        doc = toy_manifest(f"slurmsleepy{i}", options=options, timeouts={"startup": "60s", "generate": "30s"})
        doc["expect"]["budgets"] = {}
        (folder / f"slurmsleepy{i}.yaml").write_text(yaml.safe_dump(doc))
    return folder


def run(suite: Path, cwd: Path, runtime: str, report: str, *extra: str) -> tuple[float, list[dict[str, object]]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", runtime,
            "--vdbench-registry", REGISTRY, "--vdbench-slurm-dir", str(cwd / "slurm-runs"), "--vdbench-report", str(cwd / report),
            "-p", "no:cacheprovider", "-q", "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning", *extra,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{runtime} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed, json.loads((cwd / report / "report.json").read_text())["models"]


def median_of(rows: list[dict[str, object]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sleepy, quick = write_suite(root / "sleepy", DELAY), write_suite(root / "quick", 0.0)
        run(quick, root, "docker", "warm")  # builds the image once, outside every timing
        serial, serial_rows = run(sleepy, root, "slurm", "serial")
        parallel, parallel_rows = run(sleepy, root, "slurm", "parallel", "-n", str(MODELS))
        _, docker_rows = run(quick, root, "docker", "docker")
    slurm_ready, docker_ready = median_of(serial_rows, "startup_seconds"), median_of(docker_rows, "startup_seconds")
    phases = {k: statistics.median(float(r["startup_phases"][k]) for r in serial_rows) for k in ("queue", "pull", "container")}  # type: ignore[index]
    queued = max(float(r["startup_phases"]["queue"]) for r in parallel_rows)  # type: ignore[index]
    print(f"{MODELS} sleep-bound models ({DELAY:g} s per generate call), slurm runtime on the test cluster:")
    print(f"  serial: {serial:.1f}s   -n {MODELS}: {parallel:.1f}s   (longest queue wait at -n {MODELS}: {queued:.2f}s)")
    print(f"  ratio parallel/serial: {parallel / serial:.2f} (target <= 0.35)")
    print(f"  startup median: slurm submit->ready {slurm_ready:.2f}s "
          f"(queue {phases['queue']:.2f}s, pull check {phases['pull']:.2f}s, container {phases['container']:.2f}s); "
          f"docker run->ready {docker_ready:.2f}s")  # fmt: skip
    overhead = slurm_ready - docker_ready
    print(f"  slurm overhead per model: {overhead:.2f}s (target <= 2 s); ratio {slurm_ready / docker_ready:.2f}")


if __name__ == "__main__":
    main()
