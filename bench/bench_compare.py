"""How often the regression verdict cries wolf, and how often it sees a real slowdown (#18).

The reference model (model_suites/video/refvideo.yaml, case ``fox``) is started three times, as
separate adapter processes, once for the whole bench: A, A again (A'), and B, the same model with
an injected slowdown (``bench/slowed.py``: RefVideo sleeping ``slowdown`` x its own compute time
after each call, 30 % by default). Every pair times fresh rounds on all three with the adaptive
rounds a run uses (warmup, then rounds until the median's 95 % interval is within the precision
or a cap), then judges A/A (A -> A': no regression exists, so a flag is a false alarm) and A/B
(A -> B: every pair should be flagged): slower by more than the threshold AND the 95 % interval
of the change above 1. Two modes, the two ways the suite compares timings:

- ``--mode interleaved`` (default; ``vdbench ab``): the three sides are timed in cycles of one
  round each (``interleave.cycle_order``: a seeded random order that never repeats the side
  called last) and each pair is judged from its cycles' ratios
  (``timing.paired_change``): the host's drift, shared cycle by cycle, cancels.
- ``--mode sequential`` (``--vdbench-compare`` between two separate runs): each side's rounds are
  timed back to back, one side after the other, and judged by ``timing.median_change``
  (moving-block bootstrap of each side's median); the host's drift between the sides remains.

Meanwhile a bounded background CPU load runs (a busy loop on one core with a 50 % duty cycle,
started here and stopped by its PID; it also ends itself after the bench's deadline), so the
rounds are as noisy as on a shared machine. The process runtime keeps the bench affordable
(no image build, a start is an interpreter plus torch import), and each side's timed rounds are
capped at ``--max-duration`` seconds (10, where a real run allows 30); the figures are therefore
for the adapter process on this host, not for a container.

Run: ``python bench/bench_compare.py [--mode interleaved|sequential] [--pairs 40] [--slowdown 0.3] [--threshold 0.1]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_vdbench.interleave import time_interleaved  # noqa: E402
from pytest_vdbench.manifest import Case, ModelSpec, load_manifest  # noqa: E402
from pytest_vdbench.protocols import ready_probe  # noqa: E402
from pytest_vdbench.run import ModelRun  # noqa: E402
from pytest_vdbench.runtime.process import ProcessRuntime  # noqa: E402
from pytest_vdbench.timing import Change, TimingPolicy, median_change, stop_reason  # noqa: E402

LOAD = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:          # 50 % duty cycle on one core, bounded by the deadline
    t = time.monotonic() + 0.05
    while time.monotonic() < t:
        pass
    time.sleep(0.05)
"""


def spec(slowdown: float) -> ModelSpec:
    (base,) = load_manifest(ROOT / "model_suites/video/refvideo.yaml", ROOT)
    # a loaded 2-core host can take minutes to import torch: the bench waits, it does not judge startup
    update: dict[str, Any] = {"timeouts": base.manifest.timeouts.model_copy(update={"startup": 600.0})}
    if slowdown:
        update.update(adapter="slowed:SlowedRefVideo", options={**base.manifest.options, "slowdown": slowdown})
    return dataclasses.replace(base, manifest=base.manifest.model_copy(update=update))


def fresh_fox(run: ModelRun) -> Case:
    """Case ``fox``, with its earlier rounds forgotten: what follows is a fresh run of the case."""
    case = next(c for c in run.spec.manifest.cases if c.id == "fox")
    run.cases.pop(case.id, None)
    return case


def flagged(changes: list[tuple[Change, Change]], threshold: float) -> tuple[int, int]:
    """(A/A pairs flagged as regressions, A/B pairs flagged) at ``threshold``."""
    return sum(aa.exceeds(threshold) for aa, _ in changes), sum(ab.exceeds(threshold) for _, ab in changes)


def timed_rounds(run: ModelRun) -> list[float]:
    """One run's timed round trips of case ``fox``: warmup, then rounds until the stopping rule says enough."""
    case = fresh_fox(run)
    for _ in range(run.spec.manifest.warmup_rounds):
        run.generate(case, "warmup")
    while stop_reason(run.case_result(case).timed(), run.policy) is None:
        run.generate(case, "timed")
    return run.case_result(case).timed()


def one_pair(runs: list[ModelRun], mode: str) -> tuple[dict[str, list[float]], Change, Change]:
    """One pair's rounds (A, A again, A slowed) and the A/A and A/B changes, as ``mode`` times and judges them."""
    if mode == "interleaved":
        timed = time_interleaved(runs, "fox")
        a, a2, b = timed.rounds
        aa, ab = timed.change(0, 1), timed.change(0, 2)
    else:
        a, a2, b = (timed_rounds(run) for run in runs)
        aa, ab = median_change(a, a2), median_change(a, b)
    assert aa is not None and ab is not None
    return {"a": a, "a2": a2, "b": b}, aa, ab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("interleaved", "sequential"), default="interleaved")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--slowdown", type=float, default=0.3)
    parser.add_argument("--threshold", type=float, default=0.10)
    parser.add_argument("--max-duration", type=float, default=10.0, help="timed seconds per run at most (--vdbench-max-duration)")
    parser.add_argument("--max-seconds", type=float, default=3600, help="the background load ends itself after this")
    parser.add_argument(
        "--drift", type=float, default=0.0, help="first time the case back to back this long (s); print how its median drifts"
    )
    parser.add_argument("--dump", type=Path, help="write every pair's rounds here (JSON), to study the verdict offline")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    policy = TimingPolicy(max_duration=args.max_duration)
    runtime = ProcessRuntime(Path(tempfile.mkdtemp(prefix="vdbench-bench-compare-")), ready_probe)
    healthy, slowed = spec(0.0), spec(args.slowdown)
    runs = [ModelRun(m, runtime, timing=policy) for m in (healthy, healthy, slowed)]
    load = subprocess.Popen([sys.executable, "-c", LOAD, str(args.max_seconds)])
    started = time.monotonic()
    changes: list[tuple[Change, Change]] = []
    pairs: list[dict[str, list[float]]] = []
    try:
        for run in runs:
            run.ensure_started()
        if args.drift:
            print_drift(runs[0], args.drift)
        for i in range(args.pairs):
            rounds, aa, ab = one_pair(runs, args.mode)
            pairs.append(rounds)
            changes.append((aa, ab))
            print(f"pair {i + 1:2d}: A/A {aa.describe():42s} A/B {ab.describe()}", flush=True)
    finally:
        load.send_signal(signal.SIGTERM)  # stopped by its PID
        load.wait(10)
        for run in runs:
            run.stop()
    if args.dump:
        args.dump.write_text(json.dumps({"mode": args.mode, "slowdown": args.slowdown, "pairs": pairs}))
    n = args.pairs
    false_alarms, detected = flagged(changes, args.threshold)
    rounds_seen = [len(rounds) for pair in pairs for rounds in pair.values()]
    print(
        f"\n{args.mode}: refvideo[fox], process runtime, background load on one core (50 % duty), "
        f"threshold {args.threshold:.0%}, "
        f"max {args.max_duration:g}s of timed rounds per side"
    )
    print(f"timed rounds per side: {min(rounds_seen)}..{max(rounds_seen)}; bench wall {time.monotonic() - started:.0f}s")
    print(f"A/A false regressions: {false_alarms}/{n} = {false_alarms / n:.3f} (target <= 1/40 = 0.025)")
    print(f"A/B detected ({args.slowdown:.0%} slowdown): {detected}/{n} = {detected / n:.3f} (target >= 0.95)")
    print_sweep(changes)


def print_drift(run: ModelRun, seconds: float) -> None:
    """How much the median of consecutive windows of W seconds moves: the host's own run-to-run noise.

    No statistic of one run's rounds can see drift slower than the run; this shows its size.
    """
    case = fresh_fox(run)
    end = time.monotonic() + seconds
    stamps: list[float] = []
    while time.monotonic() < end:
        run.generate(case, "timed")
        stamps.append(time.monotonic())
    rounds = np.asarray(run.case_result(case).timed())
    at = np.asarray(stamps) - stamps[0]
    print(f"drift: {rounds.size} back-to-back rounds in {seconds:g}s, median {1000 * np.median(rounds):.1f} ms")
    for window in (1, 2, 4, 8, 16):
        medians = [np.median(rounds[(at >= s) & (at < s + window)]) for s in np.arange(0, at[-1] - window, window)]
        if len(medians) >= 3:
            step = np.diff(np.log(medians))
            print(f"  {window:2d}s windows ({len(medians)}): next window's median moves by {100 * np.std(step):.1f} % (sd)")


def print_sweep(changes: list[tuple[Change, Change]]) -> None:
    """The same pairs judged at other thresholds: where false alarms and misses trade off on this host."""
    n = len(changes)
    print("same pairs, other thresholds (false alarms / detected):")
    for threshold in (0.05, 0.10, 0.12, 0.15, 0.18, 0.20, 0.25):
        fa, det = flagged(changes, threshold)
        print(f"  {threshold:4.0%}: A/A {fa:2d}/{n}  A/B {det:2d}/{n}")
    spread = sorted(abs(aa.ratio - 1) for aa, _ in changes)
    if spread:
        print(f"A/A |median change|: median {100 * spread[n // 2]:.1f} %, max {100 * spread[-1]:.1f} %")


if __name__ == "__main__":
    main()
