"""Results database (SQLAlchemy 2): published targets, runs and their metrics.

Default ``sqlite:///results.db`` in the working directory; ``--db`` or ``REPRO_DB`` take an
SQLAlchemy URL: SQLite locally, PostgreSQL (``postgresql+psycopg://...``) for many writers on a
cluster. Jobs write to it from their own processes, so sessions are short-lived, and every write
is a single statement or an upsert inside one transaction: run identity is enforced by the
database (a unique config hash, which covers seed and profile), and a run is claimed atomically.
SQLite runs in WAL mode with a busy timeout and takes its write lock when a transaction begins
(``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing. A database URL's password
is never shown: :func:`safe_url`.
"""
from __future__ import annotations

import functools
import os
import re
import time
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
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from .errors import ReproError

DEFAULT_URL = "sqlite:///results.db"
# pending: waiting for its job; running: claimed by a job; requeued: checkpointed and requeued by
# its job (a cluster's preemption or time limit); interrupted: its job stopped or disappeared
# (runs again, resuming, on the next `repro run`).
RUN_STATES = ("pending", "running", "finished", "failed", "diverged", "requeued", "interrupted")
RETRYABLE = ("pending", "failed", "diverged", "requeued", "interrupted")  # states a job may claim


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
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # for a link to the MLflow UI
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # jobs that started it (a resume is one more)
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
    backend: Mapped[str] = mapped_column(String(32))   # kernel ISA: avx512 | avx2 | popcnt | portable | torch
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


def safe_url(url: str | None) -> str:
    """The URL as shown to people and written to logs: the password masked."""
    url = database_url(url)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


_ENGINES: dict[str, Engine] = {}
SQLITE_HEADER = b"SQLite format 3\x00"


def engine_for(url: str | None = None) -> Engine:
    """Engine for the URL, checked and with the schema created at first use. Every problem is
    a ReproError naming the database (password masked) and the fix, before anything is written."""
    url = database_url(url)
    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReproError(f"invalid database URL '{shown}': use an SQLAlchemy URL such as sqlite:///results.db "
                         f"or postgresql+psycopg://user@host/db") from None
    backend = parsed.get_backend_name()
    sqlite_file = backend == "sqlite" and parsed.database and parsed.database != ":memory:"
    if sqlite_file:
        # Pin relative paths to the current folder now: engines are cached, and jobs may chdir.
        parsed = parsed.set(database=os.path.abspath(parsed.database))
        url = parsed.render_as_string(hide_password=False)
    if url in _ENGINES:
        return _ENGINES[url]
    if sqlite_file:
        # Before any connection of this process: opening and closing the file ourselves later would
        # drop the POSIX locks SQLite holds on it.
        _check_sqlite_file(parsed.database)
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}  # jobs in other processes write concurrently
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        extra = " (pip install 'bnn-repro[postgres]')" if backend == "postgresql" else ""
        raise ReproError(f"cannot open database '{shown}': its driver is missing: {exc.name}{extra}") from None
    except Exception as exc:  # bad options
        raise ReproError(f"cannot open database '{shown}': {_first_line(exc)}") from None
    if backend == "sqlite":
        _sqlite_transactions(engine)
    try:
        _create_schema(engine, backend)
    except SQLAlchemyError as exc:
        raise ReproError(describe_error(exc, url)) from None
    _ENGINES[url] = engine
    return engine


def _check_sqlite_file(path: str) -> None:
    folder = os.path.dirname(path)
    where = f"database file '{path}'"
    if not os.path.isdir(folder):
        raise ReproError(f"database folder '{folder}' does not exist: create it or pass another --db URL")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReproError(f"database folder '{folder}' is read-only (SQLite writes its journal beside the file): "
                         f"make it writable or pass another --db URL")
    if not os.path.exists(path):
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise ReproError(f"{where} is read-only: make it writable (chmod u+w) or pass another --db URL")
    for _ in range(20):  # an empty file may be one another process is creating this instant: give it 2 s
        if os.path.getsize(path):
            break
        time.sleep(0.1)
    else:
        raise ReproError(f"{where} is empty, not a results database: delete it or pass another --db URL")
    with open(path, "rb") as handle:
        if handle.read(16) != SQLITE_HEADER:
            raise ReproError(f"{where} is not an SQLite database (corrupt or another kind of file): "
                             f"move it away or pass another --db URL")


def _sqlite_transactions(engine: Engine) -> None:
    """WAL and a busy timeout on every connection, and a write lock taken when a transaction
    begins, so two writers never deadlock upgrading their locks ('database is locked')."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ours below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writing job
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_schema(engine: Engine, backend: str) -> None:
    """Tables created once, however many processes start at the same moment; a database of an
    earlier version gains the columns added since; a damaged one is refused."""
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE serializes this across processes
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(4121927)"))  # 'repro': one creator at a time
        if backend == "sqlite":
            problem = conn.exec_driver_sql("PRAGMA quick_check(1)").scalar()
            if problem != "ok":
                problem = " ".join(str(problem).replace("*", "").split())
                raise ReproError(f"database file '{engine.url.database}' is damaged ({problem}): restore it "
                                 f"from a copy or move it away and pass another --db URL")
        Base.metadata.create_all(conn)
        present = {c["name"] for c in inspect(conn).get_columns(RunRecord.__tablename__)}
        for column in RunRecord.__table__.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {RunRecord.__tablename__} ADD COLUMN {column.name} {kind}")


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def describe_error(exc: BaseException, url: str | None = None) -> str:
    """One line for a database fault: what went wrong, where (password masked), and the fix."""
    shown = safe_url(url)
    message = _first_line(exc)
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        fix = "make the file and its folder writable or pass another --db URL"
    elif "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        fix = "restore it from a copy or move it away and pass another --db URL"
    elif "connect" in lowered or "refused" in lowered or "resolve" in lowered or "timeout" in lowered:
        fix = "start the server or check the URL (host, port, user, database)"
    elif "locked" in lowered:
        fix = "another process holds the database: wait for it and run the command again"
    else:
        fix = "check the database or pass another --db URL"
    return f"database '{shown}': {message}: {fix}"


def session(url: str | None = None) -> Session:
    return sessionmaker(engine_for(url), expire_on_commit=False)()


def retry_locked(fn):
    """Run a write again when SQLite still reports 'database is locked' after its busy timeout
    (a long writer elsewhere): up to 5 times, waiting longer each time."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        for attempt in range(5):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                if "locked" not in str(exc.orig).lower() or attempt == 4:
                    raise
                time.sleep(0.5 * 2 ** attempt)
    return call


def insert_ignore(db: Session, model, rows: list[dict], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO NOTHING: concurrent writers of the same rows never collide."""
    if rows:
        db.execute(_insert(db, model).values(rows).on_conflict_do_nothing(index_elements=keys))


def upsert(db: Session, model, rows: list[dict], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the other columns: one statement, no read first."""
    if not rows:
        return
    statement = _insert(db, model).values(rows)
    others = [c for c in rows[0] if c not in keys]
    db.execute(statement.on_conflict_do_update(index_elements=keys, set_={c: statement.excluded[c] for c in others})
               if others else statement.on_conflict_do_nothing(index_elements=keys))


def _insert(db: Session, model):
    dialect = db.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite_insert(model)
    if dialect == "postgresql":
        return postgresql_insert(model)
    raise ReproError(f"database dialect '{dialect}' is not supported: use SQLite or PostgreSQL")


def sync_papers(db: Session, papers) -> None:
    """Store the plugins' papers, tables, rows and published targets: upserts in one transaction
    (idempotent, and safe when several processes do it at once)."""
    papers = list(papers)
    upsert(db, PaperRecord, [{"id": p.id, "title": p.title, "authors": p.authors, "venue": p.venue, "year": p.year}
                             for p in papers], ["id"])
    upsert(db, TableRecord, [{"paper_id": p.id, "table_id": t.id, "caption": t.caption, "task": t.task, "dataset": t.dataset}
                             for p in papers for t in p.tables.values()], ["paper_id", "table_id"])
    table_pk = {(r.paper_id, r.table_id): r.id for r in db.scalars(select(TableRecord))}
    upsert(db, RowRecord, [{"table_pk": table_pk[(p.id, t.id)], "row_id": r.id, "label": r.label, "spec": r.spec,
                            "runnable": r.runnable}
                           for p in papers for t in p.tables.values() for r in t.rows], ["table_pk", "row_id"])
    row_pk = {(r.table_pk, r.row_id): r.id for r in db.scalars(select(RowRecord))}
    targets = []
    for p in papers:
        for t in p.tables.values():
            for r in t.rows:
                pk = row_pk[(table_pk[(p.id, t.id)], r.id)]
                db.execute(delete(TargetRecord).where(TargetRecord.row_pk == pk, TargetRecord.metric.not_in(list(r.published))))
                targets += [{"row_pk": pk, "metric": m, "value": v, "source": t.target_source(r, m)} for m, v in r.published.items()]
    upsert(db, TargetRecord, targets, ["row_pk", "metric"])
    db.commit()
