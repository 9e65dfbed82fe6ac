"""Ctrl-C mid-generation (#14): time from SIGINT to the end of ``pytest --vdbench``, idle and busy.

A real run on the Docker runtime: one toy model that finishes (sorted first), then one whose
generate sleeps 60 s. Once the second model's container has logged ``toy: generating``, SIGINT
goes to pytest; the bench times, from the signal, (1) the model's containers gone, (2) report.json
written, (3) the process gone. Each run must leave no container and a report that says the run
was interrupted, keeps the finished model ``ok`` and marks the other ``interrupted``.

Baseline in the same run: plain pytest (same interpreter, same installed plugins, no --vdbench)
interrupted while a test sleeps: what pytest and its other plugins cost on the way out anyway.
Conditions: idle, and under a bounded load of 2 busy processes (time-limited, stopped by PID).
Target: every Ctrl-C ends the process within 5 s (max over the runs); exit status 1 on a miss.

Needs a Docker engine and the vdbench/base:bookworm base (scripts/setup.sh). Run:
``python bench/bench_interrupt.py [--runs N] [--no-hypothesis]`` (default 3 runs per condition).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import default_sigint, toy_manifest  # noqa: E402

TARGET = 5.0
DONE, INTERRUPTED = "intbench-a", "intbench-b"  # sorted: the first finishes before the signal
GIVE_UP = 120.0  # a run still alive this long after the signal is killed and counted as a miss
BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
PLAIN_TEST = "import pathlib, time\n\ndef test_sleeps():\n    pathlib.Path('started').touch()\n    time.sleep(60)\n"


@dataclass
class Timing:
    exited: float
    containers_gone: float | None = None
    report_written: float | None = None


def docker_client() -> object:
    import docker

    return docker.from_env(timeout=30)


def model_containers(client: object, model: str) -> list[object]:
    return list(client.containers.list(all=True, sparse=True, filters={"label": f"org.vdbench.model={model}"}))  # type: ignore[attr-defined]


def write_suite(root: Path) -> Path:
    suite = root / "suite"
    suite.mkdir()
    slow = toy_manifest(INTERRUPTED, options={"delay": 60.0}, timeouts={"startup": "60s", "generate": "120s"})
    for doc in (toy_manifest(DONE), slow):
        (suite / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return suite


def pytest_command(*args: str, hypothesis: bool) -> list[str]:
    plugins = [] if hypothesis else ["-p", "no:hypothesispytest"]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugins, *args]


def wait_generating(client: object, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pytest ended before the generation started:\n{proc.communicate()[0][-3000:]}")
        for container in model_containers(client, INTERRUPTED):
            try:
                if b"toy: generating" in container.logs():  # type: ignore[attr-defined]
                    return
            except Exception:
                continue
        time.sleep(0.1)  # the poll interval of an event wait
    raise SystemExit(f"{INTERRUPTED} never logged 'toy: generating' within 300 s")


def interrupt(proc: subprocess.Popen[str], gone: Callable[[], bool] | None, report: Path | None) -> Timing:
    """SIGINT now; poll for the containers' removal and the report until the process ends."""
    time.sleep(0.5)  # well inside the 60 s generation
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    timing = Timing(exited=float("inf"))
    while proc.poll() is None and time.monotonic() - start < GIVE_UP:
        now = time.monotonic() - start
        if timing.report_written is None and report is not None and report.exists():
            timing.report_written = now
        if timing.containers_gone is None and gone is not None and gone():
            timing.containers_gone = now
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    else:
        timing.exited = time.monotonic() - start
    proc.communicate()
    if report is not None and timing.report_written is None and report.exists():
        timing.report_written = timing.exited
    return timing


def vdbench_run(client: object, suite: Path, hypothesis: bool) -> Timing:
    with tempfile.TemporaryDirectory(prefix="bench-interrupt-") as tmp:
        cwd = Path(tmp)
        args = ["--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker", "--vdbench-report=r"]
        proc = subprocess.Popen(
            pytest_command(*args, hypothesis=hypothesis), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=default_sigint,
        )  # fmt: skip
        try:
            wait_generating(client, proc)
            timing = interrupt(
                proc, lambda: not any(model_containers(client, m) for m in (DONE, INTERRUPTED)), cwd / "r" / "report.json"
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        check_honest(client, cwd / "r" / "report.json")
        if timing.containers_gone is None and not model_containers(client, INTERRUPTED):
            timing.containers_gone = timing.exited
        return timing


def check_honest(client: object, report: Path) -> None:
    """The run left nothing behind and its report tells what happened."""
    left = model_containers(client, DONE) + model_containers(client, INTERRUPTED)
    if left:
        raise SystemExit(f"FAIL: {len(left)} container(s) left after the interrupt")
    doc = json.loads(report.read_text())
    rows = {r["id"]: r for r in doc["models"]}
    problems = []
    if doc.get("run", {}).get("status") != "interrupted":
        problems.append(f"run.status is {doc.get('run', {}).get('status')!r}, not 'interrupted'")
    if rows.get(DONE, {}).get("status") != "ok":
        problems.append(f"{DONE} (finished before the signal) is {rows.get(DONE, {}).get('status')!r}, not 'ok'")
    if rows.get(INTERRUPTED, {}).get("status") != "interrupted":
        problems.append(f"{INTERRUPTED} is {rows.get(INTERRUPTED, {}).get('status')!r}, not 'interrupted'")
    if problems:
        raise SystemExit("FAIL: report.json after the interrupt: " + "; ".join(problems))


def plain_run(hypothesis: bool) -> Timing:
    with tempfile.TemporaryDirectory(prefix="bench-interrupt-plain-") as tmp:
        cwd = Path(tmp)
        (cwd / "test_plain.py").write_text(PLAIN_TEST)
        proc = subprocess.Popen(
            pytest_command("test_plain.py", hypothesis=hypothesis),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_sigint,
        )
        deadline = time.monotonic() + 120
        while not (cwd / "started").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"the plain pytest run never started its test:\n{proc.communicate()[0][-2000:]}")
            time.sleep(0.05)
        return interrupt(proc, None, None)


@contextmanager
def cpu_load(busy: int, seconds: float) -> Iterator[list[int]]:
    """``busy`` processes spinning for at most ``seconds``; stopped by PID on the way out."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)]) for _ in range(busy)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
            p.wait()


def spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return f"median {statistics.median(known):5.2f} s, max {max(known):5.2f} s"


def condition(name: str, client: object, suite: Path, runs: int, hypothesis: bool) -> bool:
    load = os.getloadavg()[0]  # the host is shared: "idle" means no load of ours
    plain = [plain_run(hypothesis) for _ in range(runs)]
    ours = [vdbench_run(client, suite, hypothesis) for _ in range(runs)]
    worst = max(t.exited for t in ours)
    ratio = statistics.median(t.exited for t in ours) / statistics.median(t.exited for t in plain)
    print(f"{name} (1-min load average {load:.1f} before, {os.getloadavg()[0]:.1f} after):")
    print(f"  pytest --vdbench, signal -> exit:      {spread([t.exited for t in ours])}  (target <= {TARGET:g} s each)")
    print(f"    signal -> containers gone:         {spread([t.containers_gone for t in ours])}")
    print(f"    signal -> report.json written:     {spread([t.report_written for t in ours])}")
    print(f"  plain pytest, same plugins (baseline): {spread([t.exited for t in plain])}")
    print(f"  ratio vdbench/plain (medians): {ratio:.2f}; target {'met' if worst <= TARGET else 'MISSED'} (max {worst:.2f} s)")
    return worst <= TARGET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interrupted runs per condition (default 3)")
    parser.add_argument("--no-hypothesis", action="store_true", help="run pytest with -p no:hypothesispytest")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 10))  # bounded
    hypothesis = not args.no_hypothesis
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="bench-interrupt-suite-") as tmp:
        suite = write_suite(Path(tmp))
        vdbench_run(client, suite, hypothesis)  # warm: the image is built once, outside the timed runs
        print(f"Ctrl-C mid-generation, {runs} run(s) per condition, hypothesis plugin {'on' if hypothesis else 'off'}")
        idle = condition("idle", client, suite, runs, hypothesis)
        with cpu_load(2, seconds=60.0 * runs + 120):
            loaded = condition("under load (2 busy processes)", client, suite, runs, hypothesis)
    return 0 if idle and loaded else 1


if __name__ == "__main__":
    sys.exit(main())
