"""--vdbench-compare: deltas and regressions on known rows (pure), and the baseline checks."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from pytest_vdbench.report import SCHEMA_VERSION
from pytest_vdbench.report.compare import compare_rows, load_baseline


def timing(median: float, valid: bool = True, reason: str = "") -> dict[str, Any]:
    return {"median": median, "valid": valid, "reason": reason}


def row(
    model: str = "m",
    generate: float = 1.0,
    valid: bool = True,
    memory: int = 1000,
    quality: dict[str, float] | None = None,
    startup: float = 2.0,
) -> dict[str, Any]:
    return {
        "id": model,
        "timings": {
            "startup": timing(startup, valid=False, reason="startup: 1 timed round(s) < minimum 3"),
            "generate": {"fox": timing(generate, valid, "" if valid else "generate[fox]: too few")},
            "fit": {},
        },
        "peak_memory_bytes": memory,
        "quality_by_case": {"fox": quality if quality is not None else {"flicker": 0.9, "motion": 0.5}},
    }


def deltas(before: dict[str, Any], after: dict[str, Any], threshold: float = 0.10) -> dict[str, Any]:
    return {d.metric: d for d in compare_rows([before], [after], threshold)["m"].deltas}


def test_slower_generation_beyond_the_threshold_is_a_regression() -> None:
    d = deltas(row(generate=1.0), row(generate=1.11))["generate[fox]"]
    assert d.regression and d.worse and d.change == pytest.approx(0.11) and d.kind == "timing"


def test_slower_within_the_threshold_or_faster_is_not() -> None:
    assert not deltas(row(generate=1.0), row(generate=1.09))["generate[fox]"].regression
    faster = deltas(row(generate=1.0), row(generate=0.5))["generate[fox]"]
    assert not faster.regression and not faster.worse and faster.change == pytest.approx(-0.5)


def test_the_threshold_is_the_users() -> None:
    assert not deltas(row(generate=1.0), row(generate=1.3), threshold=0.5)["generate[fox]"].regression
    assert deltas(row(generate=1.0), row(generate=1.3), threshold=0.2)["generate[fox]"].regression


@pytest.mark.parametrize(("old_valid", "new_valid", "side"), [(False, True, "previous"), (True, False, "this")])
def test_invalid_timings_are_shown_with_a_note_never_flagged(old_valid: bool, new_valid: bool, side: str) -> None:
    d = deltas(row(generate=1.0, valid=old_valid), row(generate=3.0, valid=new_valid))["generate[fox]"]
    assert d.worse and not d.regression
    assert d.note.startswith(f"not judged: {side} run's timing is INVALID (generate[fox]: too few)")


def test_single_startup_measurement_is_invalid_so_never_flagged() -> None:
    d = deltas(row(startup=1.0), row(startup=5.0))["startup"]
    assert d.worse and not d.regression and "INVALID" in d.note


def test_memory_growth_is_judged_without_a_validity_gate() -> None:
    assert deltas(row(memory=1000), row(memory=1200))["peak_memory"].regression
    assert not deltas(row(memory=1000), row(memory=1050))["peak_memory"].regression


def test_quality_direction_decides_what_is_worse() -> None:
    worse = deltas(row(quality={"flicker": 0.9}), row(quality={"flicker": 0.7}))
    assert worse["flicker[fox]"].regression
    better = deltas(row(quality={"flicker": 0.7}), row(quality={"flicker": 0.9}))
    assert not better["flicker[fox]"].regression
    # motion measures motion, not quality: shown, never flagged
    neutral = deltas(row(quality={"motion": 0.9}), row(quality={"motion": 0.1}))["motion[fox]"]
    assert not neutral.regression and "never flagged" in neutral.note


def test_new_and_gone_models_get_notes() -> None:
    result = compare_rows([row("old")], [row("new")], 0.1)
    assert result["new"].note.startswith("new") and not result["new"].deltas
    assert result["old"].note.startswith("gone")


def test_zero_baseline_counts_any_growth_as_infinite() -> None:
    d = deltas(row(memory=0), row(memory=10))["peak_memory"]
    assert d.change == float("inf") and d.regression


def write(path: Path, doc: object) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_baseline_problems_are_usage_errors_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match=r"--vdbench-compare .*nope.json: no such file; give the report.json"):
        load_baseline(tmp_path / "nope.json", SCHEMA_VERSION)
    with pytest.raises(pytest.UsageError, match=r"bad.json: not JSON \(.* at line 1\)"):
        load_baseline(write(tmp_path / "bad.json", "{oops"), SCHEMA_VERSION)
    with pytest.raises(pytest.UsageError, match=r"list.json: not a vdbench report.json \(no schema_version\)"):
        load_baseline(write(tmp_path / "list.json", [1, 2]), SCHEMA_VERSION)
    with pytest.raises(pytest.UsageError, match=r"old.json: report schema version 1, .* reads version 3; re-run the baseline"):
        load_baseline(write(tmp_path / "old.json", {"schema_version": 1, "models": []}), SCHEMA_VERSION)
    with pytest.raises(pytest.UsageError, match=r"rows.json: 'models' must be a list of rows with an 'id'"):
        load_baseline(write(tmp_path / "rows.json", {"schema_version": SCHEMA_VERSION, "models": [{}]}), SCHEMA_VERSION)
    good = {"schema_version": SCHEMA_VERSION, "models": [{"id": "m"}]}
    assert load_baseline(write(tmp_path / "good.json", good), SCHEMA_VERSION) == good


def test_unreadable_baseline_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match=r"--vdbench-compare .*: cannot read it"):
        load_baseline(tmp_path, SCHEMA_VERSION)  # a folder


def _with_rounds(r: dict[str, Any], rounds: list[float]) -> dict[str, Any]:
    stats = r["timings"]["generate"]["fox"]
    stats["data"], stats["median"] = rounds, statistics.median(rounds)
    return r


def test_a_median_jump_within_the_rounds_noise_is_not_a_regression() -> None:
    noisy = [0.05, 0.30, 0.10, 0.25, 0.15, 0.20, 0.08, 0.28, 0.12, 0.22, 0.18, 0.06]  # spread over 6x
    later = [v * 1.2 for v in reversed(noisy)]  # a median 20 % higher, but within that spread
    d = deltas(_with_rounds(row(), noisy), _with_rounds(row(), later))["generate[fox]"]
    assert d.change > 0.10 and not d.regression and d.interval is not None and d.interval[0] < 0 < d.interval[1]
    assert d.note.startswith("not judged: within noise: the change's 95 % interval")


def test_a_real_slowdown_in_the_rounds_is_a_regression_with_its_interval() -> None:
    rng = random.Random(6)
    before = [0.1 * rng.lognormvariate(0, 0.05) for _ in range(60)]
    after = [0.13 * rng.lognormvariate(0, 0.05) for _ in range(60)]
    d = deltas(_with_rounds(row(), before), _with_rounds(row(), after))["generate[fox]"]
    assert d.regression and d.interval is not None and 0.1 < d.interval[0] < 0.3 < d.interval[1] < 0.5
