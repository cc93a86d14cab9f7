"""Results database (SQLAlchemy 2): published targets, runs and their metrics.

Default ``sqlite:///results.db`` in the working directory; ``--db`` or ``REPRO_DB`` take any
SQLAlchemy URL. Jobs write to it from their own processes, so sessions are short-lived.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from .errors import ReproError

DEFAULT_URL = "sqlite:///results.db"
RUN_STATES = ("pending", "running", "finished", "failed", "diverged")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class PaperRecord(Base):
    __tablename__ = "papers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    authors: Mapped[str] = mapped_column(Text, default="")
    venue: Mapped[str] = mapped_column(String(128), default="")
    year: Mapped[int] = mapped_column(Integer)
    tables: Mapped[list[TableRecord]] = relationship(back_populates="paper", cascade="all, delete-orphan")


class TableRecord(Base):
    __tablename__ = "paper_tables"
    __table_args__ = (UniqueConstraint("paper_id", "table_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"))
    table_id: Mapped[str] = mapped_column(String(32))
    caption: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(64))
    paper: Mapped[PaperRecord] = relationship(back_populates="tables")
    rows: Mapped[list[RowRecord]] = relationship(back_populates="table", cascade="all, delete-orphan")


class RowRecord(Base):
    __tablename__ = "table_rows"
    __table_args__ = (UniqueConstraint("table_pk", "row_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_pk: Mapped[int] = mapped_column(ForeignKey("paper_tables.id"))
    row_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict] = mapped_column(JSON)
    runnable: Mapped[bool] = mapped_column(Boolean, default=True)
    table: Mapped[TableRecord] = relationship(back_populates="rows")
    targets: Mapped[list[TargetRecord]] = relationship(back_populates="row", cascade="all, delete-orphan")


class TargetRecord(Base):
    """One published cell, with where it came from in the paper."""
    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("row_pk", "metric"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    row_pk: Mapped[int] = mapped_column(ForeignKey("table_rows.id"))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text)
    row: Mapped[RowRecord] = relationship(back_populates="targets")


class RunRecord(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(32), unique=True)
    paper_id: Mapped[str] = mapped_column(String(64), index=True)
    table_id: Mapped[str] = mapped_column(String(32), index=True)
    row_id: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict] = mapped_column(JSON)
    assumptions: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    host: Mapped[str | None] = mapped_column(String(128), nullable=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    executor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[list[MetricRecord]] = relationship(back_populates="run", cascade="all, delete-orphan")

    def final_metrics(self) -> dict[str, float]:
        return {m.name: m.value for m in self.metrics if m.step is None}


class MetricRecord(Base):
    """A metric value; ``step`` is the epoch for curves and NULL for the final value."""
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run: Mapped[RunRecord] = relationship(back_populates="metrics")


class KernelBenchRecord(Base):
    """One row of ``repro kernels bench`` / ``bench-model``: a binary op against its float baseline."""
    __tablename__ = "kernel_benchmarks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    host: Mapped[str | None] = mapped_column(String(128), nullable=True)
    device: Mapped[str] = mapped_column(String(128))
    threads: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32))   # kernel ISA: avx2 | popcnt | portable | torch
    kind: Mapped[str] = mapped_column(String(16))      # gemm | conv | model
    name: Mapped[str] = mapped_column(String(128), index=True)
    shape: Mapped[dict] = mapped_column(JSON)
    baseline: Mapped[str] = mapped_column(String(64))
    binary_ms: Mapped[float] = mapped_column(Float)
    baseline_ms: Mapped[float] = mapped_column(Float)
    ratio: Mapped[float] = mapped_column(Float)        # median of paired baseline / binary times
    binary_gmacs: Mapped[float | None] = mapped_column(Float, nullable=True)
    packed_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    float_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ceiling_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("REPRO_DB") or DEFAULT_URL


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str | None = None) -> Engine:
    """Engine for the URL, with the schema created at first use."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReproError(f"invalid database URL '{url}': use an SQLAlchemy URL such as sqlite:///results.db") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        # Pin relative paths to the current folder now: engines are cached, and jobs may chdir.
        parsed = parsed.set(database=os.path.abspath(parsed.database))
        url = parsed.render_as_string(hide_password=False)
    if url in _ENGINES:
        return _ENGINES[url]
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}  # jobs in other processes write concurrently
        if parsed.database and parsed.database != ":memory:":
            folder = os.path.dirname(os.path.abspath(parsed.database))
            if not os.path.isdir(folder):
                raise ReproError(f"database folder '{folder}' does not exist: create it or pass another --db URL")
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # missing driver, bad options
        raise ReproError(f"cannot open database '{url}': {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            conn.execute("PRAGMA journal_mode=WAL")  # readers don't block the writing job
            conn.execute("PRAGMA foreign_keys=ON")
    try:
        Base.metadata.create_all(engine)
    except OperationalError as exc:
        raise ReproError(f"cannot open database '{url}': {exc.orig}") from None
    _ENGINES[url] = engine
    return engine


def session(url: str | None = None) -> Session:
    return sessionmaker(engine_for(url), expire_on_commit=False)()


def sync_papers(db: Session, papers) -> None:
    """Store the plugins' papers, tables, rows and published targets; idempotent."""
    for paper in papers:
        record = db.get(PaperRecord, paper.id) or PaperRecord(id=paper.id)
        record.title, record.authors, record.venue, record.year = paper.title, paper.authors, paper.venue, paper.year
        db.add(record)
        for table in paper.tables.values():
            trec = db.scalar(select(TableRecord).where(TableRecord.paper_id == paper.id, TableRecord.table_id == table.id))
            if trec is None:
                trec = TableRecord(paper_id=paper.id, table_id=table.id)
                db.add(trec)
            trec.caption, trec.task, trec.dataset = table.caption, table.task, table.dataset
            db.flush()
            for row in table.rows:
                rrec = db.scalar(select(RowRecord).where(RowRecord.table_pk == trec.id, RowRecord.row_id == row.id))
                if rrec is None:
                    rrec = RowRecord(table_pk=trec.id, row_id=row.id)
                    db.add(rrec)
                rrec.label, rrec.spec, rrec.runnable = row.label, row.spec, row.runnable
                db.flush()
                existing = {t.metric: t for t in rrec.targets}
                for metric, value in row.published.items():
                    target = existing.pop(metric, None) or TargetRecord(row_pk=rrec.id, metric=metric)
                    target.value, target.source = value, table.target_source(row, metric)
                    db.add(target)
                for stale in existing.values():
                    db.delete(stale)
    db.commit()
