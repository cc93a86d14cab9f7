"""MLflow: one MLflow run per (row, seed, profile), beside the results database.

Tracking store: with SQLite results, ``sqlite:///<folder of results.db>/mlflow.db``; with
PostgreSQL, the same server and database, MLflow's tables in their own schema ``mlflow`` (its
table names would clash with the results'); artifacts in ``mlartifacts/`` beside the database
(or in the working folder). ``MLFLOW_TRACKING_URI``, when set, wins.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import warnings
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from .db import database_url, engine_for
from .merge import flatten

MLFLOW_SCHEMA = "mlflow"


def tracking_uri(db_url: str | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    url = make_url(database_url(db_url))
    if url.get_backend_name() == "postgresql":
        return url.update_query_dict({"options": f"-csearch_path={MLFLOW_SCHEMA}"}).render_as_string(hide_password=False)
    # many jobs log at once: wait up to 60 s for SQLite's lock, as the results database does
    return f"sqlite:///{_state_folder(db_url) / 'mlflow.db'}?timeout=60"


def _state_folder(db_url: str | None) -> Path:
    url = make_url(database_url(db_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return Path.cwd()


def _mlflow():
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    import mlflow
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # importing mlflow resets its logger
    return mlflow


def _point_at(mlflow, uri: str) -> None:
    """MLflow's tracking URI for this process. ``mlflow.set_tracking_uri`` also writes it into
    MLFLOW_TRACKING_URI, which this module reads as the user's own choice (and child processes
    inherit): a later run in another folder or database would then track into this one. The
    variable is put back as it was."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def experiment_id(paper: str, table: str, db_url: str | None = None) -> str:
    """The experiment of a table, created with its artifact folder beside the database. Several
    processes may do this at once on a new store: one at a time creates MLflow's schema."""
    uri = tracking_uri(db_url)
    with _creation_lock(uri, db_url):
        mlflow = _mlflow()
        _point_at(mlflow, uri)
        name = f"{paper}/table{table}"
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = (_state_folder(db_url) / "mlartifacts").as_uri()
        return mlflow.create_experiment(name, artifact_location=artifacts)


@contextlib.contextmanager
def _creation_lock(uri: str, db_url: str | None):
    """SQLite store: an exclusive lock on a file beside it; PostgreSQL: a session advisory lock
    (and MLflow's schema made first)."""
    url = make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database:  # (the database without the URL's query)
        with open(f"{url.database}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.get_backend_name() == "postgresql" and not os.environ.get("MLFLOW_TRACKING_URI"):
        with engine_for(db_url).connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(4121928)"))
            try:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {MLFLOW_SCHEMA}"))
                conn.commit()
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(4121928)"))
                conn.commit()
    else:
        yield


class MLflowSink:
    """One MLflow run; ``run_id`` lets an interrupted run continue the same MLflow run."""

    def __init__(self, db_url: str | None, experiment: str, run_name: str, config: dict, run_id: str | None = None):
        self.mlflow = _mlflow()
        _point_at(self.mlflow, tracking_uri(db_url))
        client = self.mlflow.tracking.MlflowClient()
        if run_id is None:
            run = client.create_run(experiment, run_name=run_name, tags={f"repro.{k}": str(v) for k, v in config["run"].items()})
            run_id = run.info.run_id
            params = [self.mlflow.entities.Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
            client.log_batch(run_id, params=params)
        self.client, self.run_id = client, run_id

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        metrics = [self.mlflow.entities.Metric(k, float(v), now, step or 0) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            if path.exists():
                self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str) -> None:
        mlflow_status = {"finished": "FINISHED", "running": "RUNNING", "requeued": "KILLED", "interrupted": "KILLED"}
        self.client.set_terminated(self.run_id, status=mlflow_status.get(status, "FAILED"))
