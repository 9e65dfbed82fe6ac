"""The results store itself, on SQLite and PostgreSQL: schema, migrations, errors, writes, queries, concurrency."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pytest_vdbench.options import store_url
from pytest_vdbench.store import SCHEMA_VERSION, StoreError, open_store
from pytest_vdbench.store.history import format_history, history_rows
from pytest_vdbench.store.schema import models, rounds, scores
from pytest_vdbench.tools.cli import main as cli


def row(model: str, status: str = "ok", generate: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {
        "id": model,
        "model": model,
        "variant": "default",
        "status": status,
        "startup_seconds": 1.0,
        "generate_seconds_median": generate,
        "peak_memory_bytes": 1e6,
        "quality": {"motion_smoothness": 0.9},
        "quality_by_case": {"fox": {"motion_smoothness": 0.9, "dynamic_degree": 0.4}},
        "outcomes": {"passed": 5, "failed": 0, "skipped": 0},
        "failures": [],
        "log_tail": "last line",
        "_store": {"rounds": [{"phase": "generate", "case": "fox", "warmup": False, "seconds": [0.4, 0.5, 0.6]}]},
        **extra,
    }


def test_store_urls_are_resolved() -> None:
    root = Path("/proj")
    assert store_url("none", root) is None
    assert store_url("x/results.db", root) == "sqlite:////proj/x/results.db"
    assert store_url("postgresql://u@h/db", root) == "postgresql+psycopg://u@h/db"
    assert store_url("sqlite:///a.db", root) == "sqlite:///a.db"


def test_a_model_is_one_transaction_with_its_rounds_and_scores(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run("r1", host_class="h", host={}, plugin_version="0", command_line=[], options={})
    store.write_model("r1", row("alpha"), reuse_key="k1", key_parts={"image": "i1"}, host_class="h")
    store.write_model("r1", row("beta", status="failed"), reuse_key="k2", key_parts={"image": "i2"}, host_class="h")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rounds)).scalar() == 6
        assert conn.execute(sa.select(sa.func.count()).select_from(scores)).scalar() == 4
        passed = dict(conn.execute(sa.select(models.c.model_id, models.c.passed)).all())
    assert passed == {"alpha": True, "beta": False}
    # the same key under another model id is never that model's result (the lm-eval-harness cache bug)
    assert set(store.reusable({"alpha": "k1", "beta": "k2", "gamma": "k1"}, None)) == {"alpha"}
    assert store.reusable({"alpha": "k1"}, max_age=3600)["alpha"].run_id == "r1"
    with store.engine.begin() as conn:
        conn.execute(models.update().values(measured_at=time.time() - 7200))
    assert store.reusable({"alpha": "k1"}, max_age=3600) == {}
    store.close()


def test_a_newer_schema_is_refused_and_an_older_one_migrated(store_url: str) -> None:
    open_store(store_url).close()
    engine = sa.create_engine(store_url if "psycopg" in store_url else store_url.replace("postgresql:", "postgresql+psycopg:"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(
        StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, this pytest-vdbench knows up to {SCHEMA_VERSION}"
    ):
        open_store(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 0"))
    open_store(store_url).close()  # version 0 -> every migration reruns (idempotent creates), back to current
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchdb://x", "unknown database kind"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the results store"),
        ("sqlite:////proc/no/such/dir/results.db", "cannot create the folder"),
    ],
)
def test_bad_store_urls_are_clear_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


def _writer(url: str, worker: int, count: int) -> None:
    store = open_store(url)
    for i in range(count):
        store.write_model("shared", row(f"m{worker}-{i}"), reuse_key=f"k{worker}-{i}", key_parts={"image": "i"}, host_class="h")
    store.close()


def test_concurrent_writers_lose_nothing(store_url: str) -> None:
    first = open_store(store_url)
    first.start_run("shared", host_class="h", host={}, plugin_version="0", command_line=[], options={})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store_url, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len(first.run_models("shared")) == 60
    first.close()


def test_history_formats(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(store_url)
    for i, generate in enumerate([0.5, 0.7]):
        store.start_run(f"run{i}", host_class="h", host={}, plugin_version="0", command_line=[], options={})
        store.write_model(f"run{i}", row("alpha", generate=generate), reuse_key=None, key_parts=None, host_class="h")
    rows = history_rows(store, ["alpha"], "generate", 5)
    assert [(r["run"], r["generate"]) for r in rows] == [("run0", 0.5), ("run1", 0.7)]
    assert format_history(rows, "csv").splitlines()[0] == "model,run,when,status,generate"
    assert "dynamic_degree" not in format_history(history_rows(store, [], None, 1), "text")
    assert [r["dynamic_degree"] for r in history_rows(store, ["alpha"], "dynamic_degree", 1)] == [None]
    store.close()
    assert cli(["history", "alpha", "--last", "1", "--format", "json", "--store", store_url.replace("+psycopg", "")]) == 0
    out = capsys.readouterr().out
    assert '"run": "run1"' in out and "run0" not in out
    assert cli(["history", "--store", str(tmp_path / "missing.db")]) == 1
    assert "no results store yet" in capsys.readouterr().err


def test_keys_change_with_the_base_image_id_of_that_model_only(tmp_path: Path) -> None:
    import yaml

    from helpers import ADAPTERS, toy_manifest
    from pytest_vdbench.manifest import load_manifest
    from pytest_vdbench.options import VdbenchOptions
    from pytest_vdbench.runtime.host import HostInfo
    from pytest_vdbench.store.keys import KeyMaker

    specs = []
    for name, base in (("alpha", "bookworm"), ("beta", "bullseye"), ("gamma", "bookworm")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(toy_manifest(name, image={"context": str(ADAPTERS), "base": base})))
        specs.extend(load_manifest(path, tmp_path))
    ids = {"vdbench/base:bookworm": "sha256:aaa", "vdbench/base:bullseye": "sha256:bbb"}
    asked: list[str] = []

    def base_id(tag: str) -> str | None:
        asked.append(tag)
        return ids.get(tag)

    options = VdbenchOptions(
        enabled=True, suites=(), models=(), variants=(), runtime="docker", runtime_explicit=True, report_dir=None
    )
    host = HostInfo(cpus=2, memory_total=1 << 30)
    before = {s.id: KeyMaker("docker", host, options, base_id=base_id).key(s)[0] for s in specs}
    assert len(set(before.values())) == 3  # alpha and gamma share an image but never a key
    ids["vdbench/base:bullseye"] = "sha256:ccc"  # beta's base image was rebuilt
    keys = KeyMaker("docker", host, options, base_id=base_id)
    after = {s.id: keys.key(s)[0] for s in specs}
    assert {m for m in before if before[m] != after[m]} == {"beta"}
    assert sorted(asked[-2:]) == ["vdbench/base:bookworm", "vdbench/base:bullseye"]  # once per base, not per model
    assert KeyMaker("process", host, options).key(specs[0])[0] != before["alpha"]  # the runtime kind is in the host class
    ids.pop("vdbench/base:bookworm")
    assert KeyMaker("docker", host, options, base_id=base_id).key(specs[0]) == (None, None)  # no base: not reusable
