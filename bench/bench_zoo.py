"""A 300-model zoo end to end in containers (#16): harness share of the wall time, and a rerun with reuse.

N manifests of the toy model share one build context (one image, distinct names). The zoo runs
under ``pytest --vdbench -n 4`` with the docker runtime into a fresh results store. Printed:

- wall time, and the harness share: wall minus the time spent inside containers (startup plus
  every generate round, summed from the store's raw rounds and spread over the containers that can run at once) — target < 10 %;
- then one manifest changes and the zoo reruns with ``--vdbench-reuse``: only that model runs.
  Target: rerun <= 1.5 x (collection of the zoo + a run of that one model alone), both measured here;
- the store's size and its write time per model.

Bounded: every model asks for 1 CPU and 128 MiB, so the ledger never runs more containers than the
host has CPUs; each pytest command has a timeout. Run: ``python bench/bench_zoo.py [--models N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import ADAPTERS, toy_manifest  # noqa: E402

WORKERS = 4
CPUS = 1
#: containers at once: the ledger admits no more than the host's CPUs hold
LANES = max(1, min(WORKERS, (os.cpu_count() or 1) // CPUS))
TIMEOUT = 3600


def write_zoo(suite: Path, count: int) -> list[str]:
    """``count`` manifests under ``suite``, sharing one build context copied beside it (inside the project)."""
    suite.mkdir(parents=True, exist_ok=True)
    context = suite.parent / "adapters"
    if not context.exists():
        shutil.copytree(ADAPTERS, context, ignore=shutil.ignore_patterns("__pycache__"))
    names = [f"zoo{i:04d}" for i in range(count)]
    for name in names:
        doc = toy_manifest(name, image={"context": str(context), "base": "bookworm"})
        doc["resources"] = {"cpus": CPUS, "memory": "128m"}  # the toy declares 1 CPU (test_requirements checks it)
        doc["timeouts"] = {"startup": "120s", "generate": "60s"}
        doc["expect"]["budgets"] = {}
        (suite / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return names


def pytest_run(cwd: Path, suite: Path, *extra: str) -> tuple[float, str]:
    args = [sys.executable, "-m", "pytest", "--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=docker"]
    args += ["-p", "no:cacheprovider", "--benchmark-disable"]
    # the dev environment's Hypothesis plugin (the test suite's, not vdbench's) imports all of
    # Hypothesis in every process's terminal summary: ~1 s per xdist worker at the end of a run
    args += ["-p", "no:hypothesispytest"]
    args += ["-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    start = time.perf_counter()
    proc = subprocess.run([*args, *extra], cwd=cwd, capture_output=True, text=True, check=False, timeout=TIMEOUT)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        raise SystemExit(f"pytest {' '.join(extra)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def container_seconds(db: Path, run_id: str) -> float:
    """Startup plus every generate round of a run's models (the time the harness waited on containers)."""
    with sqlite3.connect(db) as conn:
        (total,) = conn.execute(
            "SELECT coalesce(sum(r.seconds), 0) FROM rounds r JOIN models m ON m.pk = r.model_pk WHERE m.run_id = ?", (run_id,)
        ).fetchone()
    return float(total)


def engine_floor(runs: int = 5) -> float:
    """The engine's own cost of one container, no harness: create, start, wait for ``true``, remove (median)."""
    import statistics

    import docker

    client = docker.from_env()
    times = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            container = client.containers.create("vdbench/base:bookworm", ["true"], labels={"org.vdbench.bench": "zoo"})
            try:
                container.start()
                container.wait(timeout=60)
            finally:
                container.remove(force=True)
            times.append(time.perf_counter() - start)
    finally:
        client.close()
    return statistics.median(times)


def newest_run(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        (run_id,) = conn.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return str(run_id)


def remove_zoo_tags(names: list[str]) -> int:
    """Untag the zoo's images (vdbench/zooNNNN:<hash>, all one image id); the image stays while another tag holds it."""
    import docker

    client = docker.from_env()
    removed = 0
    try:
        wanted = {f"vdbench/{name}" for name in names}
        for image in client.images.list(name="vdbench/zoo*"):
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] in wanted:
                    client.images.remove(tag, noprune=False)
                    removed += 1
    finally:
        client.close()
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=300)
    count = parser.parse_args().models
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="vdbench-zoo-") as tmp:
        root = Path(tmp)
        suite = root / "model_suites"
        names = write_zoo(suite, count)
        try:
            measure(root, suite, names)
        finally:
            print(f"  removed {remove_zoo_tags(names)} zoo image tag(s)")


def measure(root: Path, suite: Path, names: list[str]) -> None:
    """The first run, then the rerun with one changed manifest, and their baselines; prints the figures."""
    count = len(names)
    db = root / ".vdbench" / "results.db"
    wall, out = pytest_run(root, suite, "-n", str(WORKERS), "-v")  # -v: the store's write time per model
    inside = container_seconds(db, newest_run(db)) / LANES
    stored = re.search(r"stored (\d+) model\(s\) in .* \(([\d.]+) ms each\)", out)
    print(f"{count} toy models, one shared image, docker runtime, -n {WORKERS}:")
    share = (wall - inside) / wall
    print(f"  wall {wall:.1f}s, inside containers {inside:.1f}s per lane ({LANES} at once)")
    print(f"  harness share {share:.0%} (target < 10%)")
    floor = engine_floor()
    print(
        f"  the engine alone: {floor:.2f}s per container (create, start, `true`, remove) x {count} / {LANES} lanes = "
        f"{floor * count / LANES:.0f}s, {floor * count / LANES / wall:.0%} of the wall before any harness work"
    )
    if stored:
        print(f"  store: {db.stat().st_size / 1e6:.2f} MB for {stored[1]} models, {stored[2]} ms write per model")
    doc = yaml.safe_load((suite / f"{names[0]}.yaml").read_text())
    doc["timeouts"]["startup"] = "121s"  # one manifest value changes: only this model reruns
    (suite / f"{names[0]}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rerun, out = pytest_run(root, suite, "-n", str(WORKERS), "-q", "--vdbench-reuse")
    reused = re.search(r"vdbench: (\d+) model\(s\) unchanged", out)
    collect, _ = pytest_run(root, suite, "-q", "--collect-only")
    one, _ = pytest_run(root, suite, "-q", f"--vdbench-model={names[0]}", "--vdbench-store=none")
    n_reused = reused[1] if reused else 0
    print(f"  rerun after changing {names[0]} with --vdbench-reuse: {rerun:.1f}s, {n_reused} model(s) reused")
    print(f"  collection {collect:.1f}s + one model alone {one:.1f}s: ratio {rerun / (collect + one):.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
