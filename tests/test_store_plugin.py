"""The results store in real inner runs: reuse by key, resume after SIGKILL, drift and golden outputs, xdist, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from helpers import ADAPTERS, toy_manifest
from pytest_vdbench.store import SCHEMA_VERSION, open_store


def write_model(root: Path, name: str, **overrides: Any) -> dict[str, Any]:
    """A toy model with a build context of its own (ctx/NAME), so one file can change for one model."""
    ctx = root / "ctx" / name
    if not ctx.exists():
        shutil.copytree(ADAPTERS, ctx, ignore=shutil.ignore_patterns("__pycache__"))
    doc = toy_manifest(name, image={"context": str(ctx), "base": "bookworm"}, **overrides)
    (root / "suite").mkdir(exist_ok=True)
    (root / "suite" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def inner(pytester: pytest.Pytester, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={pytester.path / 'suite'}",
        "--vdbench-runtime=process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "--vdbench-min-duration=0",
        "--vdbench-precision=0.5",  # toy calls last milliseconds: a loaded host's noise is most of each
        *extra,
    )


def statuses(pytester: pytest.Pytester, report: str = "rep") -> dict[str, str]:
    doc = json.loads((pytester.path / report / "report.json").read_text())
    return {m["id"]: m["status"] for m in doc["models"]}


def rerun(pytester: pytest.Pytester, *extra: str) -> set[str]:
    """Run with --vdbench-reuse; the models that actually ran (every other one must say reused)."""
    shutil.rmtree(pytester.path / "rep", ignore_errors=True)
    result = inner(pytester, "--vdbench-reuse", "--vdbench-report=rep", *extra)
    found = statuses(pytester)
    ran = {m for m, s in found.items() if "reused from run" not in s}
    assert result.ret == (1 if "delta" in ran else 0), result.stdout.str()  # delta is the failing model
    reused = set(found) - ran
    if reused:
        result.stdout.fnmatch_lines(
            [f"vdbench: {len(reused)} model(s) unchanged since *: results reused; --vdbench-no-reuse to rerun"]
        )
    return ran


def test_reuse_reruns_exactly_the_model_whose_key_changed(pytester: pytest.Pytester) -> None:
    for name in ("alpha", "beta", "gamma"):
        write_model(pytester.path, name)
    write_model(pytester.path, "delta", fault="generate_crash")
    first = inner(pytester, "--vdbench-report=rep")
    assert first.ret == 1  # delta fails
    assert rerun(pytester) == {"delta"}  # a failed model is never reused
    with (pytester.path / "ctx" / "alpha" / "toy.py").open("a") as fh:
        fh.write("\n# one changed file in alpha's build context\n")
    assert rerun(pytester) == {"alpha", "delta"}
    write_model(pytester.path, "beta", timeouts={"startup": "21s", "generate": "10s"})  # one manifest value
    assert rerun(pytester) == {"beta", "delta"}
    assert rerun(pytester) == {"delta"}
    assert rerun(pytester, "--vdbench-min-rounds=2") == {"alpha", "beta", "gamma", "delta"}  # a measurement option
    doc = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert all(m["status"] != "ok" or "reused_from" not in m for m in doc["models"])
    # aging: results older than --vdbench-reuse-max-age are measured again
    with sqlite3.connect(pytester.path / ".vdbench" / "results.db") as db:
        db.execute("UPDATE models SET measured_at = measured_at - 3 * 86400 WHERE model_id = 'gamma'")
    assert rerun(pytester, "--vdbench-min-rounds=2", "--vdbench-reuse-max-age=2d") == {"gamma", "delta"}
    off = inner(pytester, "--vdbench-reuse", "--vdbench-no-reuse", "--vdbench-min-rounds=2", "-k", "alpha")
    off.assert_outcomes(passed=6, skipped=1)


def test_everything_reused_exits_zero_and_the_store_can_be_off(pytester: pytest.Pytester) -> None:
    write_model(pytester.path, "alpha")
    assert inner(pytester).ret == 0
    again = inner(pytester, "--vdbench-reuse")
    assert again.ret == 0
    again.stdout.fnmatch_lines(["*1 model(s) unchanged since run*", "*deselected*"])
    off = inner(pytester, "--vdbench-store=none", "--vdbench-reuse", "--collect-only")
    assert off.ret == pytest.ExitCode.USAGE_ERROR
    off.stderr.fnmatch_lines(["ERROR: --vdbench-reuse needs the results store; drop --vdbench-store=none*"])


def _models_in(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [r[0] for r in conn.execute("SELECT model_id FROM models ORDER BY model_id")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


def test_resume_after_sigkill_runs_only_what_did_not_finish(pytester: pytest.Pytester) -> None:
    write_model(pytester.path, "alpha")
    write_model(pytester.path, "beta")
    slow = {**toy_manifest()["expect"], "budgets": {"generate_seconds": 8, "peak_memory": "200m"}}
    write_model(pytester.path, "gamma", options={"fault": "none", "delay": 1.5}, expect=slow)
    db = pytester.path / ".vdbench" / "results.db"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "--vdbench",
        f"--vdbench-suite={pytester.path / 'suite'}",
        "--vdbench-runtime=process",
    ]
    args += ["-p", "no:cacheprovider", "--benchmark-disable", "-p", "no:randomly"]
    log = (pytester.path / "killed.log").open("w")
    proc = subprocess.Popen(args, cwd=pytester.path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _models_in(db) != ["alpha", "beta"] and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, (pytester.path / "killed.log").read_text()
        assert _models_in(db) == ["alpha", "beta"], "the inner run did not reach gamma"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the inner pytest and its adapter processes, mid-gamma
        proc.wait()
        log.close()
    store = open_store(f"sqlite:///{db}")
    killed = store.list_runs()[0]
    assert killed["status"] == "running" and killed["finished_at"] is None
    store.close()
    result = inner(pytester, "--vdbench-resume=last", "--vdbench-report=rep")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=6, skipped=1)  # gamma's tests only
    doc = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert sorted(m["id"] for m in doc["models"]) == ["alpha", "beta", "gamma"]
    assert doc["environment"]["testrun"] == killed["id"]
    store = open_store(f"sqlite:///{db}")
    assert [m.model_id for m in store.run_models(killed["id"])] == ["alpha", "beta", "gamma"]
    assert store.list_runs()[0]["status"] == "finished" and len(store.list_runs()) == 1
    store.close()
    unknown = inner(pytester, "--vdbench-resume=abcdef", "--collect-only")
    unknown.stderr.fnmatch_lines(
        [f"ERROR: --vdbench-resume abcdef: no such run in sqlite:///*results.db (newest: {killed['id']})"]
    )


def _shift_output(pytester: pytest.Pytester, old: str, new: str) -> None:
    toy = pytester.path / "ctx" / "alpha" / "toy.py"
    text = toy.read_text()
    assert old in text
    toy.write_text(text.replace(old, new))


def test_drift_is_reported_and_fails_a_strict_golden_case(pytester: pytest.Pytester) -> None:
    write_model(pytester.path, "alpha")
    first = inner(pytester, "--vdbench-keep-outputs")
    assert first.ret == 0
    same = inner(pytester, "--vdbench-keep-outputs")  # same image, same outputs: nothing to say
    assert "outputs changed" not in same.stdout.str()
    _shift_output(pytester, "0.5 + 0.45 * np.sin", "0.5 + 0.40 * np.sin")
    shifted = inner(pytester, "--vdbench-keep-outputs", "--vdbench-report=rep", "--vdbench-compare=last")
    assert shifted.ret == 0, shifted.stdout.str()  # drift is information by default
    shifted.stdout.fnmatch_lines(["vdbench: alpha: outputs changed since run * (fox: digest * -> *, max |diff| 0.0*)"])
    doc = json.loads((pytester.path / "rep" / "report.json").read_text())
    (drift,) = doc["models"][0]["drift"]
    assert drift["case"] == "fox" and 0.01 < drift["max_abs_diff"] < 0.1
    assert doc["comparison"]["baseline_testrun"] == drift["since_run"]  # --vdbench-compare=last: the store's newest run
    write_model(pytester.path, "alpha", expect={**toy_manifest()["expect"], "golden": "strict"})
    _shift_output(pytester, "0.5 + 0.40 * np.sin", "0.5 + 0.35 * np.sin")
    strict = inner(pytester, "--vdbench-report=rep")
    assert strict.ret == 1
    strict.assert_outcomes(passed=5, failed=1, skipped=1)
    strict.stdout.fnmatch_lines(
        ["*test_determinism*", "*expect.golden: strict: the output of case 'fox' (seed 1) differs from run *"]
    )
    html = (pytester.path / "rep" / "report.html").read_text()
    assert "<h2>Trends</h2>" in html and html.count('class="trend"') >= 3


@pytest.mark.slow
def test_xdist_workers_and_one_store(pytester: pytest.Pytester, store_url: str) -> None:
    names = ["alpha", "beta", "gamma", "delta"]
    for name in names:
        write_model(pytester.path, name)
    url = store_url.replace("+psycopg", "")
    result = inner(pytester, "-n", "4", f"--vdbench-store={url}", "--vdbench-report=rep")
    assert result.ret == 0, result.stdout.str()
    store = open_store(store_url)
    (run,) = store.list_runs()
    stored = store.run_models(run["id"])
    assert sorted(m.model_id for m in stored) == sorted(names) and all(m.passed for m in stored)
    with store.engine.connect() as conn:  # every round shipped from the workers: the warmup + the adaptive timed rounds
        counts = conn.execute(
            sa.text("SELECT phase, warmup, count(*) FROM rounds GROUP BY phase, warmup ORDER BY phase, warmup")
        ).all()
        timed = conn.execute(
            sa.text(
                "SELECT m.model_id, r.seconds FROM rounds r JOIN models m ON m.pk = r.model_pk "
                "WHERE r.phase = 'generate' AND NOT r.warmup ORDER BY m.model_id, r.round"
            )
        ).all()
    # the store holds exactly the timed rounds the row's statistics and --vdbench-compare read
    data = {m.model_id: m.row["timings"]["generate"]["fox"]["data"] for m in stored}
    assert all(len(d) >= 3 for d in data.values())
    assert {name: [s for model, s in timed if model == name] for name in names} == data
    total = sum(len(d) for d in data.values())
    assert [tuple(c) for c in counts] == [("generate", False, total), ("generate", True, 4), ("startup", False, 4)]
    store.close()
    again = inner(pytester, "-n", "4", f"--vdbench-store={url}", "--vdbench-reuse", "--vdbench-report=rep")
    assert again.ret == 0
    assert all("reused from run" in s for s in statuses(pytester).values())
    again.stdout.fnmatch_lines(["vdbench: 0 model(s) left to run: 1 of 4 xdist worker(s) started"])
    # one model changed: one worker starts, and it loads and collects that model's manifest only
    write_model(pytester.path, "beta", timeouts={"startup": "21s", "generate": "10s"})
    one = inner(pytester, "-n", "4", f"--vdbench-store={url}", "--vdbench-reuse", "--vdbench-report=rep", "-v")
    assert one.ret == 0, one.stdout.str()
    assert {m for m, s in statuses(pytester).items() if "reused from run" not in s} == {"beta"}
    one.stdout.fnmatch_lines(["vdbench: 1 model(s) left to run: 1 of 4 xdist worker(s) started"])
    ran = {line.split("::")[1] for line in one.stdout.lines if " PASSED " in line}
    assert ran == {"beta"}, one.stdout.str()
    assert "created: 1/1 worker" in one.stdout.str() or "1 worker [" in one.stdout.str(), one.stdout.str()


def test_unusable_stores_are_one_usage_error(pytester: pytest.Pytester) -> None:
    write_model(pytester.path, "alpha")
    bad = inner(pytester, "--vdbench-store=nosuch://x", "--collect-only")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --vdbench-store: nosuch://x: unknown database kind*"])
    assert "Traceback" not in bad.stderr.str()
    db = pytester.path / "newer.db"
    open_store(f"sqlite:///{db}").close()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    newer = inner(pytester, f"--vdbench-store={db}", "--collect-only")
    expected = f"the results store has schema version 99, this pytest-vdbench knows up to {SCHEMA_VERSION}"
    newer.stderr.fnmatch_lines([f"ERROR: --vdbench-store: *newer.db: {expected}*"])
    bad_age = inner(pytester, "--vdbench-reuse-max-age=soon", "--collect-only")
    bad_age.stderr.fnmatch_lines(["*--vdbench-reuse-max-age: 'soon' is not an age > 0*"])


def test_a_stored_baseline_of_another_report_schema_is_refused(pytester: pytest.Pytester) -> None:
    write_model(pytester.path, "alpha")
    store = open_store(f"sqlite:///{pytester.path / '.vdbench' / 'results.db'}")
    store.start_run(
        "old1", host_class="h", host={}, plugin_version="0", command_line=[], options={}, git_commit=None, project=None
    )
    # a row stored before rows carried report_schema: schema 2, medians of the server's own time, no rounds
    old_row = {"id": "alpha", "status": "ok", "timings": {"generate": {"fox": {"median": 0.01, "valid": True}}}}
    store.write_model("old1", old_row, reuse_key=None, key_parts=None, host_class="h")
    store.finish_run("old1", "finished")
    store.close()
    result = inner(pytester, "--vdbench-compare=last", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --vdbench-compare last: run old1 stored its results with report schema version 2, this pytest-vdbench "
         "reads version 3 (timings: round trips of adaptive rounds); re-run the baseline with this version, then compare*"]
    )  # fmt: skip
