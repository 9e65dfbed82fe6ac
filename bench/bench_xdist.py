"""Parallel speed-up (#6): 4 sleep-bound models, ``pytest --vdbench -n 4`` vs. serial, same run.

Each model is the toy adapter sleeping DELAY seconds per generate call (about 6 calls per model:
warmup, rounds, determinism, the quality probe). Serial and ``-n 4`` runs of the same suite are
timed back to back (wall time of the whole pytest command, worker start-up included).
Target: parallel <= 0.35 x serial. Run: ``python bench/bench_xdist.py``.
"""

from __future__ import annotations

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
MODELS = 4


def run(suite: Path, cwd: Path, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vdbench",
            "--vdbench-suite",
            str(suite),
            "--vdbench-runtime",
            "process",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
            *extra,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = root / "suite"
        suite.mkdir()
        for i in range(MODELS):
            doc = toy_manifest(f"sleepy{i}", options={"delay": DELAY}, timeouts={"startup": "30s", "generate": "30s"})
            doc["expect"]["budgets"] = {}
            (suite / f"sleepy{i}.yaml").write_text(yaml.safe_dump(doc))
        serial = run(suite, root)
        parallel = run(suite, root, "-n", str(MODELS))
    print(f"{MODELS} sleep-bound models ({DELAY:g} s per generate call), process runtime:")
    print(f"  serial: {serial:.1f}s   -n {MODELS}: {parallel:.1f}s")
    print(f"  ratio parallel/serial: {parallel / serial:.2f} (target <= 0.35)")


if __name__ == "__main__":
    main()
