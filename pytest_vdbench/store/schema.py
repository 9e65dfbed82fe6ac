"""The results store's tables (SQLAlchemy Core) and its ordered, versioned migrations.

Why not Alembic: the store lives inside a pytest plugin; nobody runs ``alembic upgrade`` before
``pytest --vdbench``. Opening a store must bring it up to date by itself, in one transaction, while
other runs may open the same file or server at the same moment. An ordered list of migration
functions and a one-row ``schema_version`` table do exactly that with no migration environment,
ini file or scripts folder to ship; a store written by a newer plugin (a version past the list)
is refused instead of half-read.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "fingerprints", "metadata", "models", "rounds", "runs", "scores", "version"]

metadata = MetaData()

version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", Float, nullable=False),  # POSIX seconds (portable across SQLite and PostgreSQL)
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),  # running | finished | interrupted
    Column("host_class", String(64), nullable=False, index=True),
    Column("host", JSON, nullable=False),
    Column("plugin_version", String(32), nullable=False),
    Column("command_line", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("git_commit", String(64)),
    Column("project", Text),
)

models = Table(
    "models",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("status", Text, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("reuse_key", String(64), index=True),
    Column("key_parts", JSON),
    Column("image_hash", String(64)),
    Column("host_class", String(64), nullable=False),
    Column("measured_at", Float, nullable=False),  # when the figures were measured (reused rows keep the original's)
    Column("written_at", Float, nullable=False),
    Column("reused_from", String(64)),  # the run that measured a reused row
    Column("startup_seconds", Float),
    Column("generate_seconds_median", Float),
    Column("peak_memory_bytes", Float),
    Column("mean_memory_bytes", Float),
    Column("cpu_percent", Float),
    Column("headline_quality", Float),
    Column("log_tail", Text),
    Column("failures", JSON),
    Column("row", JSON, nullable=False),  # everything report.json's row holds
    UniqueConstraint("run_id", "model_id", name="uq_models_run_model"),
    Index("ix_models_model_id", "model_id", "measured_at"),
)

rounds = Table(
    "rounds",
    metadata,
    Column("model_pk", Integer, ForeignKey("models.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("phase", String(16), nullable=False),  # generate | fit | startup
    Column("case_id", String(200), nullable=False),
    Column("round", Integer, nullable=False),
    Column("warmup", Boolean, nullable=False),
    Column("seconds", Float, nullable=False),
)

scores = Table(
    "scores",
    metadata,
    Column("model_pk", Integer, ForeignKey("models.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("case_id", String(200), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("value", Float),
)

fingerprints = Table(
    "fingerprints",
    metadata,
    Column("model_pk", Integer, ForeignKey("models.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("model_id", String(200), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("case_hash", String(64), nullable=False),
    Column("image_hash", String(64)),
    Column("digest", String(64), nullable=False),
    Column("shape", JSON, nullable=False),
    Column("dtype", String(16), nullable=False),
    Column("stats", JSON, nullable=False),  # per-channel mean and std
    Column("thumbnail", LargeBinary),  # PNG strip of a few frames (video)
    Column("output", LargeBinary),  # zlib'd .npy of the whole output, only with --vdbench-keep-outputs
    Index("ix_fingerprints_case", "model_id", "case_hash"),
)


def _v1(conn: Connection) -> None:
    for table in (runs, models, rounds, scores, fingerprints):
        table.create(conn, checkfirst=True)


#: migration n brings a store from version n-1 to n; append, never edit a released one
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)
