"""Collection speed: 300 generated manifests under ``pytest --vdbench --collect-only`` (#2: < 1.5 s).

Each manifest has two variants (tiny, full) and two cases: 300 manifests give 600 model modules and
6,600 tests. Measured in the same run, median of REPEATS subprocesses each:

* the collection phase itself (``pytest_collectstart`` of the session to ``pytest_collection_finish``,
  timed by a tiny plugin) and the whole ``pytest --collect-only`` wall time;
* baseline: 600 plain Python test modules with the same 6,600 parametrized tests, so the ratio is
  vdbench's cost over pytest's inherent cost per test item.

PYTHONDONTWRITEBYTECODE is removed from the children's environment: with it, pytest re-rewrites
every plugin module's asserts on each start (about 1.3 s here), which no user setup pays.
Run: ``python bench/bench_collect.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

N = 300
REPEATS = 5

TIMER = """
import json, os, time
_t = {}
def pytest_collectstart(collector):
    _t.setdefault("start", time.perf_counter())
def pytest_collection_finish(session):
    with open(os.environ["VDBENCH_BENCH_OUT"], "w") as fh:
        json.dump({"collect": time.perf_counter() - _t["start"], "items": len(session.items)}, fh)
"""

PLAIN = """
import pytest

@pytest.fixture(scope="module")
def run():
    return None

def test_build(run): pass
def test_health(run): pass
def test_requirements(run): pass

@pytest.mark.parametrize("case", ["a", "b"])
def test_generate(run, case): pass

@pytest.mark.parametrize("case", ["a", "b"])
def test_determinism(run, case): pass

@pytest.mark.parametrize("case", ["a", "b"])
def test_quality(run, case): pass

@pytest.mark.parametrize("case", ["a", "b"])
def test_budget(run, case): pass
"""


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


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    out = cwd / "timing.json"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bench_timer", "--collect-only", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**env, "VDBENCH_BENCH_OUT": str(out)},
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    data = json.loads(out.read_text())
    return data["collect"], wall, data["items"]


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench_timer.py").write_text(TIMER)
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
        suite = root / "model_suites" / "gen"
        suite.mkdir(parents=True)
        # a real build context (collection validates it: Dockerfile, adapter module and class)
        shutil.copytree(Path(__file__).resolve().parent.parent / "tests" / "adapters", root / "containers" / "toy")
        plain = root / "plain"
        plain.mkdir()
        for i in range(N):
            (suite / f"model{i:03d}.yaml").write_text(yaml.safe_dump(manifest(i)))
            for variant in ("tiny", "full"):
                (plain / f"test_model{i:03d}_{variant}.py").write_text(PLAIN)
        measure(["--vdbench"], root, env)  # warm the bytecode caches once
        vd = [measure(["--vdbench"], root, env) for _ in range(REPEATS)]
        base = [measure(["plain"], root, env) for _ in range(REPEATS)]
    vc, vw = statistics.median(v[0] for v in vd), statistics.median(v[1] for v in vd)
    bc, bw = statistics.median(b[0] for b in base), statistics.median(b[1] for b in base)
    print(f"vdbench : {N} manifests -> {vd[0][2]} tests: collection {vc:.2f}s, whole --collect-only {vw:.2f}s (target < 1.5 s)")
    print(f"baseline: {base[0][2]} plain pytest tests in {2 * N} modules: collection {bc:.2f}s, whole {bw:.2f}s")
    print(f"ratio vdbench/baseline: collection {vc / bc:.2f}x, whole {vw / bw:.2f}x")


if __name__ == "__main__":
    main()
