"""Timings in pytest-benchmark's JSON format, also under pytest-xdist (where pytest-benchmark is off).

Each process turns its model runs into benchmark records (statistics by pytest-benchmark's own
``Stats``); xdist workers ship theirs to the controller through ``workeroutput``, which writes one
file for the run, readable by ``pytest-benchmark compare``. Every record notes how many other
models held resources on the host when it ran (``extra_info.concurrent_models``) and which
process ran it, so a reader can judge contention; a plain ``-n0`` run is the reference for exact
figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_benchmark.stats import Stats

if TYPE_CHECKING:
    from pytest_vdbench.run import ModelRun

__all__ = ["benchmark_document", "run_records", "write_benchmark_json"]


def _record(name: str, group: str, durations: list[float], extra: dict[str, Any]) -> dict[str, Any] | None:
    if not durations:
        return None
    stats: Any = Stats()  # type: ignore[no-untyped-call]  # pytest-benchmark's own statistics (untyped upstream)
    for value in durations:
        stats.update(value)
    return {
        "group": group,
        "name": name,
        "fullname": name,
        "params": None,
        "param": None,
        "extra_info": extra,
        "options": {"timer": "vdbench (round trip of each timed round)", "warmup": False, "disable_gc": False},
        "stats": {**stats.as_dict(), "iterations": 1, "data": list(durations)},
    }


def run_records(runs: Iterable[ModelRun], worker: str) -> list[dict[str, Any]]:
    """Build, startup, fit and generation timings of each model run (warmup rounds excluded)."""
    records: list[dict[str, Any] | None] = []
    for run in runs:
        base: dict[str, Any] = {"model": run.spec.id, "runtime": run.runtime.name, "worker": worker}
        reservation = getattr(run.instance, "reservation", None)
        base["concurrent_models"] = getattr(reservation, "concurrent", 0)
        if run.build is not None and run.build.build_seconds is not None:
            records.append(
                _record(
                    f"build[{run.spec.id}]",
                    "build",
                    [run.build.build_seconds],
                    {**base, "cached": run.build.cached, "image": run.build.image},
                )
            )
        if run.instance is not None:
            records.append(_record(f"startup[{run.spec.id}]", "startup", [run.instance.startup_seconds], base))
        warmup = run.spec.manifest.warmup_rounds
        for case in run.spec.manifest.cases:
            result = run.cases.get(case.id)
            if result is None:
                continue
            if result.fit_seconds is not None:
                records.append(_record(f"fit[{run.spec.id}-{case.id}]", "fit", [result.fit_seconds], {**base, "case": case.id}))
            records.append(
                _record(
                    f"generate[{run.spec.id}-{case.id}]",
                    "generate",
                    result.timed(),
                    {**base, "case": case.id, "warmup_rounds_excluded": warmup},
                )
            )
    return [r for r in records if r is not None]


def benchmark_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A pytest-benchmark JSON document (machine_info, commit_info, benchmarks, datetime, version)."""
    from pytest_benchmark import __version__

    uname = platform.uname()
    return {
        "machine_info": {
            "node": uname.node,
            "processor": uname.processor,
            "machine": uname.machine,
            "system": uname.system,
            "release": uname.release,
            "python_version": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
        },
        "commit_info": {},
        "benchmarks": sorted(records, key=lambda r: (r["group"], r["name"])),
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": __version__,
    }


def write_benchmark_json(path: Path, records: list[dict[str, Any]]) -> None:
    """Write atomically (a run interrupted midway never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(benchmark_document(records), indent=2, default=str))
    os.replace(tmp, path)
