"""The results store: every run, model row, timed round, score and output fingerprint in a database.

SQLite at ``.vdbench/results.db`` by default, any SQLAlchemy URL (PostgreSQL for teams) when given.
One transaction per finished model, so an interrupted run keeps what finished. ``open_store``
migrates an older store and refuses a newer one (``StoreError``: the caller makes it a usage error).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from pytest_vdbench.store import schema
from pytest_vdbench.store.schema import SCHEMA_VERSION, fingerprints, models, rounds, runs, scores

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "StoredModel", "open_store"]

_PG_LOCK = 0x76646200  # pg_advisory_xact_lock id: one migrating process at a time


class StoreError(Exception):
    """The store cannot be used; the message names the URL and the fix."""


def redact(url: str) -> str:
    """The URL with its password hidden (for messages)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@dataclass(frozen=True)
class StoredModel:
    """One stored model row: the run that holds it and the report row."""

    run_id: str
    model_id: str
    passed: bool
    reuse_key: str | None
    image_hash: str | None
    measured_at: float
    source_run: str  # the run that measured it (itself unless reused)
    row: dict[str, Any]


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db = sa.make_url(url).database
        if db and db != ":memory:":
            try:
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {db} ({exc.strerror or exc})") from None
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN itself
            dbapi_conn.execute("PRAGMA busy_timeout = 60000")
            dbapi_conn.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # take the write lock up front: two writers never deadlock upgrading a read lock
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def open_store(url: str) -> Store:
    """Connect, create or migrate the schema, and return the store; every problem is a ``StoreError``."""
    shown = redact(url)
    try:
        engine = _engine(url)
    except NoSuchModuleError:
        raise StoreError(f"{shown}: unknown database kind; use sqlite:///PATH, postgresql://USER@HOST/DB or none") from None
    except ArgumentError as exc:
        raise StoreError(f"{shown}: not a database URL ({exc}); use sqlite:///PATH, postgresql://USER@HOST/DB or none") from None
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"{shown}: the database driver {exc.name!r} is not installed; pip install 'pytest-vdbench[store-pg]'"
        ) from None
    try:
        _migrate(engine)
    except StoreError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StoreError(f"{shown}: cannot open the results store ({first}); check the URL, or --vdbench-store=none") from None
    return Store(engine, shown)


def _migrate(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        if sa.inspect(conn).has_table("schema_version"):
            found = conn.execute(sa.select(schema.version.c.version)).scalar()
        else:
            schema.version.create(conn)
            found = None
        current = int(found or 0)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{engine.url.render_as_string(hide_password=True)}: the results store has schema version {current}, "
                f"this pytest-vdbench knows up to {SCHEMA_VERSION}; upgrade pytest-vdbench or use another "
                "--vdbench-store"
            )
        for migration in schema.MIGRATIONS[current:]:
            migration(conn)
        if found is None:
            conn.execute(schema.version.insert().values(version=SCHEMA_VERSION))
        elif current < SCHEMA_VERSION:
            conn.execute(schema.version.update().values(version=SCHEMA_VERSION))


def _row_figures(row: dict[str, Any]) -> dict[str, Any]:
    quality = row.get("quality") or {}
    headline = next((v for v in quality.values() if isinstance(v, int | float)), None)
    return {
        "startup_seconds": row.get("startup_seconds"),
        "generate_seconds_median": row.get("generate_seconds_median"),
        "peak_memory_bytes": row.get("peak_memory_bytes"),
        "mean_memory_bytes": row.get("mean_memory_bytes"),
        "cpu_percent": row.get("cpu_percent"),
        "headline_quality": headline,
    }


def passed(row: dict[str, Any]) -> bool:
    """A row that may be reused: status ok, no failed test, something actually passed."""
    outcomes = row.get("outcomes") or {}
    return row.get("status") == "ok" and not row.get("failures") and not outcomes.get("failed") and bool(outcomes.get("passed"))


class Store:
    """An open results store (thread-unsafe; one per process)."""

    def __init__(self, engine: Engine, shown: str) -> None:
        self.engine = engine
        self.url = shown

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, run_id: str, **fields: Any) -> None:
        """Record a run (or mark a resumed one running again)."""
        with self._tx() as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                conn.execute(runs.insert().values(id=run_id, started_at=time.time(), status="running", **fields))
            else:
                conn.execute(runs.update().where(runs.c.id == run_id).values(status="running", finished_at=None))

    def finish_run(self, run_id: str, status: str) -> None:
        with self._tx() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(status=status, finished_at=time.time()))

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        """The run's row; ``run_id`` may be a unique prefix, or ``last`` for the newest run."""
        with self.engine.connect() as conn:
            query = sa.select(runs)
            if run_id == "last":
                found = conn.execute(query.order_by(runs.c.started_at.desc()).limit(1)).mappings().all()
            else:
                found = conn.execute(query.where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)).mappings().all()
        return dict(found[0]) if len(found) == 1 else None

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- models ----------------------------------------------------------------------------
    def write_model(
        self,
        run_id: str,
        row: dict[str, Any],
        *,
        reuse_key: str | None,
        key_parts: dict[str, Any] | None,
        host_class: str,
        reused_from: str | None = None,
        measured_at: float | None = None,
    ) -> int:
        """One finished model in one transaction: its row, raw rounds, scores and fingerprints."""
        now = time.time()
        extras = row.pop("_store", {}) or {}
        values = {
            "run_id": run_id,
            "model_id": str(row["id"]),
            "name": str(row.get("model", row["id"])),
            "variant": str(row.get("variant", "default")),
            "status": str(row.get("status")),
            "passed": passed(row),
            "reuse_key": reuse_key,
            "key_parts": key_parts,
            "image_hash": (key_parts or {}).get("image"),
            "host_class": host_class,
            "measured_at": measured_at or now,
            "written_at": now,
            "reused_from": reused_from,
            "log_tail": row.get("log_tail") or "",
            "failures": row.get("failures") or [],
            "row": row,
            **_row_figures(row),
        }
        with self._tx() as conn:
            conn.execute(models.delete().where(models.c.run_id == run_id, models.c.model_id == values["model_id"]))
            pk = int(conn.execute(models.insert().values(**values).returning(models.c.pk)).scalar_one())
            self._children(conn, pk, row, extras)
        return pk

    def _children(self, conn: Connection, pk: int, row: dict[str, Any], extras: dict[str, Any]) -> None:
        round_rows = [
            {"model_pk": pk, "phase": r["phase"], "case_id": r["case"], "round": i, "warmup": bool(r["warmup"]), "seconds": s}
            for r in extras.get("rounds", [])
            for i, s in enumerate(r["seconds"])
        ]
        if round_rows:
            conn.execute(rounds.insert(), round_rows)
        score_rows = [
            {"model_pk": pk, "case_id": case, "metric": k, "value": v}
            for case, metrics in (row.get("quality_by_case") or {}).items()
            for k, v in metrics.items()
        ]
        if score_rows:
            conn.execute(scores.insert(), score_rows)
        fp_rows = [
            {
                "model_pk": pk,
                "model_id": str(row["id"]),
                "case_id": fp["case"],
                "case_hash": fp["case_hash"],
                "image_hash": extras.get("image_hash"),
                "digest": fp["digest"],
                "shape": fp["shape"],
                "dtype": fp["dtype"],
                "stats": fp["stats"],
                "thumbnail": base64.b64decode(fp["thumbnail"]) if fp.get("thumbnail") else None,
                "output": base64.b64decode(fp["output"]) if fp.get("output") else None,
            }
            for fp in extras.get("fingerprints", [])
        ]
        if fp_rows:
            conn.execute(fingerprints.insert(), fp_rows)

    def _stored(self, rows: Iterable[Any]) -> list[StoredModel]:
        return [
            StoredModel(
                run_id=r.run_id,
                model_id=r.model_id,
                passed=bool(r.passed),
                reuse_key=r.reuse_key,
                image_hash=r.image_hash,
                measured_at=float(r.measured_at),
                source_run=r.reused_from or r.run_id,
                row=dict(r.row),
            )
            for r in rows
        ]

    def run_models(self, run_id: str) -> list[StoredModel]:
        """Every model row a run wrote (what finished in it)."""
        with self.engine.connect() as conn:
            return self._stored(conn.execute(sa.select(models).where(models.c.run_id == run_id).order_by(models.c.model_id)))

    def reusable(self, keys: dict[str, str], max_age: float | None) -> dict[str, StoredModel]:
        """Model id -> the newest passed row with that model's key (measured within ``max_age`` seconds)."""
        found: dict[str, StoredModel] = {}
        wanted: dict[str, set[str]] = {}
        for model_id, key in keys.items():
            wanted.setdefault(key, set()).add(model_id)
        query = sa.select(models).where(models.c.passed.is_(True))
        if max_age is not None:
            query = query.where(models.c.measured_at >= time.time() - max_age)
        with self.engine.connect() as conn:
            chunk = list(wanted)
            for start in range(0, len(chunk), 500):
                part = query.where(models.c.reuse_key.in_(chunk[start : start + 500])).order_by(models.c.measured_at)
                for stored in self._stored(conn.execute(part)):
                    if stored.model_id in wanted.get(stored.reuse_key or "", ()):  # never another model's answers
                        found[stored.model_id] = stored
        return found

    def history(self, model_ids: list[str], last: int, host_class: str | None = None) -> list[dict[str, Any]]:
        """The newest ``last`` measured rows per model (reused copies left out), oldest first."""
        query = (
            sa.select(models, runs.c.started_at).join(runs, runs.c.id == models.c.run_id).where(models.c.reused_from.is_(None))
        )
        if model_ids:
            query = query.where(models.c.model_id.in_(model_ids))
        if host_class is not None:
            query = query.where(models.c.host_class == host_class)
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query.order_by(models.c.measured_at.desc())).mappings():
                kept = out.setdefault(r["model_id"], [])
                if len(kept) < last:
                    kept.append(dict(r))
        return [r for model in sorted(out) for r in reversed(out[model])]

    def golden(
        self, model_id: str, case_hash: str, exclude_run: str | None = None, *, passed_only: bool = False
    ) -> dict[str, Any] | None:
        """The newest stored fingerprint of this case of this model (its run and image hash included)."""
        query = (
            sa.select(fingerprints, models.c.run_id, models.c.measured_at)
            .join(models, models.c.pk == fingerprints.c.model_pk)
            .where(fingerprints.c.model_id == model_id, fingerprints.c.case_hash == case_hash, models.c.reused_from.is_(None))
        )
        if exclude_run is not None:
            query = query.where(models.c.run_id != exclude_run)
        if passed_only:
            query = query.where(models.c.passed.is_(True))
        with self.engine.connect() as conn:
            found = conn.execute(query.order_by(models.c.measured_at.desc()).limit(1)).mappings().first()
        return dict(found) if found is not None else None
