"""``--vdbench-compare``: per-model deltas against a previous report.json, and regressions flagged.

Timings are judged only when both runs call them VALID (see :mod:`.stats`); a change between an
INVALID and anything else is shown with a note, never flagged. A timing regresses only when its
median rose by more than the threshold AND the two runs' rounds say the rise is real: the 95 %
moving-block bootstrap interval of the median ratio lies above 1 (:func:`median_change`); the
interval of the change is shown either way. Peak memory and quality scores are
single deterministic-enough measurements and are always judged. Pure functions over report rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_vdbench.timing import median_change

__all__ = ["Delta", "ModelComparison", "compare_rows", "load_baseline"]


@dataclass(frozen=True)
class Delta:
    """One compared figure: ``change`` is relative ((after - before) / |before|)."""

    metric: str
    kind: str  # timing | memory | quality
    before: float
    after: float
    change: float
    worse: bool
    regression: bool
    note: str = ""
    #: timings: the 95 % interval of the relative change, from both runs' rounds (None without rounds)
    interval: tuple[float, float] | None = None


@dataclass
class ModelComparison:
    """The deltas of one model; ``note`` says when there was nothing to compare with."""

    model: str
    deltas: list[Delta] = field(default_factory=list)
    note: str = ""

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.regression]

    def as_dict(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "regressions": [d.metric for d in self.regressions],
            "deltas": [asdict(d) for d in self.deltas],
        }


def load_baseline(path: Path, schema_version: int) -> dict[str, Any]:
    """Read and check a previous report.json; every problem is a UsageError naming the file and the fix."""
    flag = f"--vdbench-compare {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise pytest.UsageError(
            f"{flag}: no such file; give the report.json of an earlier run (written by --vdbench-report=DIR)"
        ) from None
    except OSError as exc:
        raise pytest.UsageError(f"{flag}: cannot read it ({exc.strerror or exc}); check the path and its permissions") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(
            f"{flag}: not JSON ({exc.msg} at line {exc.lineno}); give the report.json an earlier run wrote"
        ) from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise pytest.UsageError(
            f"{flag}: not a vdbench report.json (no schema_version); give the report.json an earlier run wrote"
        )
    found = doc["schema_version"]
    if found != schema_version:
        raise pytest.UsageError(
            f"{flag}: report schema version {found!r}, this pytest-vdbench reads version {schema_version}; "
            "re-run the baseline with this version to get a comparable report"
        )
    models = doc.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in models):
        raise pytest.UsageError(f"{flag}: 'models' must be a list of rows with an 'id'; the file is damaged, re-run the baseline")
    return doc


def _relative(before: float, after: float) -> float:
    if before == after:
        return 0.0
    if before == 0:
        return math.copysign(math.inf, after - before)
    return (after - before) / abs(before)


def _timing_pairs(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Timing name -> its statistics (startup, generate[case], fit[case])."""
    timings = row.get("timings") or {}
    out: dict[str, dict[str, Any]] = {}
    if isinstance(timings.get("startup"), dict):
        out["startup"] = timings["startup"]
    for group in ("generate", "fit"):
        for case, stats in sorted((timings.get(group) or {}).items()):
            if isinstance(stats, dict):
                out[f"{group}[{case}]"] = stats
    return out


def _compare_timing(name: str, old: dict[str, Any], new: dict[str, Any], threshold: float) -> Delta | None:
    before, after = old.get("median"), new.get("median")
    if before is None or after is None:
        return None
    change = _relative(before, after)
    worse = change > 0
    notes = [
        f"{side} run's timing is INVALID ({s.get('reason') or 'no reason recorded'})"
        for side, s in (("previous", old), ("this", new))
        if not s.get("valid")
    ]
    interval = None
    real = True  # single measurements (startup, fit) carry no rounds: the threshold alone judges them
    rounds_old, rounds_new = old.get("data") or [], new.get("data") or []
    if len(rounds_old) > 1 and len(rounds_new) > 1:
        ratio = median_change(rounds_old, rounds_new)
        if ratio is not None:
            interval = (ratio.low - 1, ratio.high - 1)
            real = ratio.exceeds(threshold)
            if worse and change > threshold and not real:
                notes.append(f"within noise: the change's 95 % interval {ratio.describe().split('(')[1].rstrip(')')} includes 0")
    regression = worse and change > threshold and real and not any(n.startswith(("previous", "this")) for n in notes)
    note = "not judged: " + "; ".join(notes) if notes else ""
    return Delta(name, "timing", float(before), float(after), change, worse, regression, note, interval)


def _compare_quality(old: dict[str, Any], row: dict[str, Any], threshold: float, directions: Mapping[str, int]) -> list[Delta]:
    """Each case's scores; a metric whose registry entry names no better direction is shown, never flagged."""
    deltas: list[Delta] = []
    old_q, new_q = old.get("quality_by_case") or {}, row.get("quality_by_case") or {}
    for case in sorted(old_q.keys() & new_q.keys()):
        for metric in sorted(old_q[case].keys() & new_q[case].keys()):
            b, a = old_q[case][metric], new_q[case][metric]
            if not isinstance(b, int | float) or not isinstance(a, int | float):
                continue
            change = _relative(b, a)
            direction = directions.get(metric, 0)
            worse = direction * change < 0
            note = "" if direction else "no better direction: shown, never flagged"
            deltas.append(
                Delta(f"{metric}[{case}]", "quality", float(b), float(a), change, worse, worse and abs(change) > threshold, note)
            )
    return deltas


def compare_rows(
    previous: list[dict[str, Any]], current: list[dict[str, Any]], threshold: float, directions: Mapping[str, int] | None = None
) -> dict[str, ModelComparison]:
    """Model id -> its comparison; models of either side without a partner get a note only.

    ``directions``: metric -> +1 (higher is better), -1 (lower), 0 (neither); default the built-ins'.
    """
    if directions is None:
        from pytest_vdbench.checks.metrics import builtin_registry

        directions = builtin_registry().directions()
    old_by_id = {str(r["id"]): r for r in previous}
    out: dict[str, ModelComparison] = {}
    for row in current:
        model = str(row["id"])
        result = out[model] = ModelComparison(model)
        old = old_by_id.get(model)
        if old is None:
            result.note = "new: not in the previous report"
            continue
        new_t, old_t = _timing_pairs(row), _timing_pairs(old)
        for name in sorted(new_t.keys() & old_t.keys(), key=lambda n: (n != "startup", n)):
            delta = _compare_timing(name, old_t[name], new_t[name], threshold)
            if delta is not None:
                result.deltas.append(delta)
        before, after = old.get("peak_memory_bytes"), row.get("peak_memory_bytes")
        if isinstance(before, int | float) and isinstance(after, int | float):
            change = _relative(before, after)
            result.deltas.append(
                Delta("peak_memory", "memory", float(before), float(after), change, change > 0, change > threshold)
            )
        result.deltas.extend(_compare_quality(old, row, threshold, directions))
        if not result.deltas:
            result.note = "nothing comparable: neither run measured the same figures"
    for model in sorted(old_by_id.keys() - {str(r["id"]) for r in current}):
        out[model] = ModelComparison(model, note="gone: in the previous report only")
    return out
