"""The Recorder: ``start`` / ``log`` / ``finish`` of one run, written to the results database
(the SQL sink) and to MLflow (the MLflow sink). The run's record is looked up once, at start;
MLflow trouble never hides the run's own outcome, which the database always gets."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from sqlalchemy import delete, select, update

from . import db as dbm
from .paths import run_dir
from .tracking import MLflowSink


class SQLSink:
    """Writes one run's row and metrics; single statements keyed by the run's primary key."""

    def __init__(self, db_url: str | None, run_pk: int):
        self.db_url, self.run_pk = db_url, run_pk

    def update(self, **fields) -> None:
        with dbm.session(self.db_url) as db:
            db.execute(update(dbm.RunRecord).where(dbm.RunRecord.id == self.run_pk).values(**fields))
            db.commit()

    def log(self, values: dict[str, float], step: int | None) -> None:
        """Replace the run's values at ``step`` (None: the final ones)."""
        at_step = dbm.MetricRecord.step.is_(None) if step is None else dbm.MetricRecord.step == step
        with dbm.session(self.db_url) as db:
            db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == self.run_pk, at_step))
            db.add_all(dbm.MetricRecord(run_pk=self.run_pk, name=k, value=float(v), step=step) for k, v in values.items())
            db.commit()


class Recorder:
    """Records one run, identified by its config hash, in the database and MLflow."""

    def __init__(self, db_url: str | None, run_hash: str, experiment: str, executor: str, job_id: str):
        self.db_url, self.run_hash, self.experiment = db_url, run_hash, experiment
        self.executor, self.job_id = executor, job_id
        self.sql: SQLSink | None = None
        self.mlflow: MLflowSink | None = None

    def start(self) -> dict:
        """Mark the run running and open its MLflow run (the same one again on a resume);
        returns the run's config."""
        with dbm.session(self.db_url) as db:
            record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == self.run_hash))
            run_pk, config, mlflow_run_id = record.id, record.config, record.mlflow_run_id
        self.sql = SQLSink(self.db_url, run_pk)
        self.sql.update(status="running", started_at=dbm.utcnow(), host=socket.gethostname(), git_commit=_git_commit(),
                        run_dir=str(run_dir(self.run_hash)), job_id=self.job_id, executor=self.executor)
        identity = config["run"]
        name = f"{identity['row']}-s{identity['seed']}-{identity['profile']}"
        self.mlflow = MLflowSink(self.db_url, self.experiment, name, config, mlflow_run_id)
        if self.mlflow.run_id != mlflow_run_id:
            self.sql.update(mlflow_run_id=self.mlflow.run_id)
        return config

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        self.mlflow.log(values, step)
        self.sql.log(values, step)

    def artifacts(self, paths: list[Path]) -> None:
        self.mlflow.log_artifacts(paths)

    def finish(self, status: str, metrics: dict[str, float], error: str | None, duration_s: float) -> None:
        if self.mlflow is not None:
            try:
                self.mlflow.finish(status)
            except Exception:  # MLflow trouble must not hide the run's own outcome
                pass
        if self.sql is None:  # the run was never started: record the outcome all the same
            with dbm.session(self.db_url) as db:
                self.sql = SQLSink(self.db_url, db.scalar(select(dbm.RunRecord.id).where(dbm.RunRecord.hash == self.run_hash)))
        self.sql.log(metrics, None)
        self.sql.update(status=status, error=error, finished_at=dbm.utcnow(), duration_s=duration_s)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
