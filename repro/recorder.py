"""The Recorder: ``start`` / ``log`` / ``finish`` of one run, written to the results database
(the SQL sink) and to MLflow (the MLflow sink). The run's record is looked up once, at start,
where the job claims it in one conditional statement, so two jobs never train the same run;
MLflow trouble never hides the run's own outcome, which the database always gets."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from sqlalchemy import and_, delete, func, or_, select, update

from . import db as dbm
from .paths import run_dir
from .tracking import MLflowSink


class SQLSink:
    """Writes one run's row and metrics; single statements keyed by the run's primary key."""

    def __init__(self, db_url: str | None, run_pk: int):
        self.db_url, self.run_pk = db_url, run_pk

    @dbm.retry_locked
    def update(self, **fields) -> None:
        with dbm.session(self.db_url) as db:
            db.execute(update(dbm.RunRecord).where(dbm.RunRecord.id == self.run_pk).values(**fields))
            db.commit()

    @dbm.retry_locked
    def log(self, values: dict[str, float], step: int | None) -> None:
        """Replace the run's values at ``step`` (None: the final ones)."""
        at_step = dbm.MetricRecord.step.is_(None) if step is None else dbm.MetricRecord.step == step
        with dbm.session(self.db_url) as db:
            db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == self.run_pk, at_step))
            db.add_all(dbm.MetricRecord(run_pk=self.run_pk, name=k, value=float(v), step=step) for k, v in values.items())
            db.commit()


class Taken(RuntimeError):
    """Another job holds the run (it is running, or finished meanwhile): this job leaves it."""


@dbm.retry_locked
def claim(db_url: str | None, run_hash: str, job_id: str, executor: str) -> tuple[int, dict, str | None, float]:
    """Claim a run for this job in one conditional statement: a pending, requeued or interrupted
    run, or one running in this very job (requeued after a crash). Returns (primary key, config,
    MLflow run id, seconds its earlier attempts took); raises Taken when another job holds it."""
    runs = dbm.RunRecord
    with dbm.session(db_url) as db:
        record = db.scalar(select(runs).where(runs.hash == run_hash))
        claimable = or_(runs.status.in_(("pending", "requeued", "interrupted")),
                        and_(runs.status == "running", runs.job_id == job_id))
        claimed = db.execute(update(runs).where(runs.id == record.id, claimable).values(
            status="running", started_at=dbm.utcnow(), host=socket.gethostname(), git_commit=_git_commit(),
            run_dir=str(run_dir(run_hash)), job_id=job_id, executor=executor,
            attempts=func.coalesce(runs.attempts, 0) + 1)).rowcount
        db.commit()
        if claimed != 1:
            now = db.execute(select(runs.status, runs.job_id).where(runs.id == record.id)).one()
            raise Taken(f"run {run_hash} is {now.status} (job {now.job_id}): not trained twice")
        earlier = (record.duration_s or 0.0) if record.status in ("requeued", "interrupted", "running") else 0.0
        return record.id, record.config, record.mlflow_run_id, earlier


class Recorder:
    """Records one run, identified by its config hash, in the database and MLflow."""

    def __init__(self, db_url: str | None, run_hash: str, experiment: str, executor: str, job_id: str):
        self.db_url, self.run_hash, self.experiment = db_url, run_hash, experiment
        self.executor, self.job_id = executor, job_id
        self.sql: SQLSink | None = None
        self.mlflow: MLflowSink | None = None

    def start(self) -> dict:
        """Claim the run, mark it running and open its MLflow run (the same one again on a
        resume); returns the run's config. Raises Taken when another job holds it."""
        run_pk, config, mlflow_run_id, self.earlier_s = claim(self.db_url, self.run_hash, self.job_id, self.executor)
        self.sql = SQLSink(self.db_url, run_pk)
        identity = config["run"]
        name = f"{identity['row']}-s{identity['seed']}-{identity['profile']}"
        self._mlflow(lambda: setattr(self, "mlflow", MLflowSink(self.db_url, self.experiment, name, config, mlflow_run_id)))
        if self.mlflow is not None and self.mlflow.run_id != mlflow_run_id:
            self.sql.update(mlflow_run_id=self.mlflow.run_id, mlflow_experiment_id=self.experiment)
        return config

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        self._mlflow(lambda: self.mlflow and self.mlflow.log(values, step))
        self.sql.log(values, step)

    def artifacts(self, paths: list[Path]) -> None:
        self._mlflow(lambda: self.mlflow and self.mlflow.log_artifacts(paths))

    def _mlflow(self, call) -> None:
        """MLflow trouble (its store busy, unreachable) never stops the run, whose results go to the
        results database all the same: it is said once, and MLflow is left for the rest of the run."""
        try:
            call()
        except Exception as exc:
            text = str(exc).strip()
            print(f"repro: MLflow left for this run: {type(exc).__name__}: {text.splitlines()[0] if text else ''}", flush=True)
            self.mlflow = None

    def finish(self, status: str, metrics: dict[str, float], error: str | None, duration_s: float) -> float:
        """Record the outcome of this attempt; returns the run's duration over all its attempts."""
        if self.mlflow is not None:
            try:
                self.mlflow.finish(status)
            except Exception:  # MLflow trouble must not hide the run's own outcome
                pass
        if self.sql is None:  # the claim itself failed (no database?): nothing of this run is ours to write
            return duration_s
        total = getattr(self, "earlier_s", 0.0) + duration_s
        if metrics:
            self.sql.log(metrics, None)
        self.sql.update(status=status, error=error, finished_at=dbm.utcnow(), duration_s=total)
        return total


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
