"""Collection speed: 300 generated manifests under ``pytest --vdbench --collect-only`` (#2: < 1.5 s).

Prints the wall time of collecting 300 manifests (1 variant each, 2 cases) against a baseline
measured in the same run: plain ``pytest --collect-only`` of an empty folder, which is pytest's
own start-up cost. Run: ``python bench/bench_collect.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

N = 300
REPEATS = 5


def manifest(i: int) -> dict[str, object]:
    return {
        "name": f"model{i:03d}",
        "modality": "video",
        "adapter": "toy:ToyVideo",
        "image": {"context": "containers/toy"},
        "resources": {"cpus": 1, "memory": "1g"},
        "cases": [{"id": "a", "prompt": "a fox", "seed": 0}, {"id": "b", "prompt": "a cat", "seed": 1}],
        "expect": {"shape": [8, 3, 32, 32], "dtype": "float32", "range": [0, 1]},
        "variants": {"tiny": {}, "full": {"requires": {"gpu": True}, "resources": {"gpus": 1}}},
    }


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = root / "model_suites" / "gen"
        suite.mkdir(parents=True)
        for i in range(N):
            (suite / f"model{i:03d}.yaml").write_text(yaml.safe_dump(manifest(i)))
        (root / "empty").mkdir()
        common = ["-p", "no:cacheprovider", "--collect-only", "-q"]
        base = [timed([*common, "empty"], root) for _ in range(REPEATS)]
        vd = [timed([*common, "--vdbench"], root) for _ in range(REPEATS)]
        out = subprocess.run([sys.executable, "-m", "pytest", *common, "--vdbench"], cwd=root, capture_output=True, text=True, check=False)
        items = sum(1 for line in out.stdout.splitlines() if "::" in line)
    b, v = statistics.median(base), statistics.median(vd)
    print(f"collect {N} manifests ({items} tests): median {v:.2f}s over {REPEATS} runs (target < 1.5 s)")
    print(f"baseline pytest start-up, empty folder: median {b:.2f}s")
    print(f"ratio vdbench/baseline: {v / b:.2f}x; vdbench's own share: {v - b:.2f}s")


if __name__ == "__main__":
    main()
