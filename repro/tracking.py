"""MLflow: one MLflow run per (row, seed, profile), beside the results database.

Default tracking store: ``sqlite:///<folder of results.db>/mlflow.db`` with artifacts in
``mlartifacts/`` there; ``MLFLOW_TRACKING_URI`` overrides.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

from sqlalchemy.engine import make_url

from .config import flatten
from .db import database_url


def tracking_uri(db_url: str | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{_state_folder(db_url) / 'mlflow.db'}"


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


def experiment_id(paper: str, table: str, db_url: str | None = None) -> str:
    """The experiment of a table, created with its artifact folder beside the database."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri(db_url))
    name = f"{paper}/table{table}"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (_state_folder(db_url) / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


class MLflowSink:
    """One MLflow run; ``run_id`` lets an interrupted run continue the same MLflow run."""

    def __init__(self, db_url: str | None, experiment: str, run_name: str, config: dict, run_id: str | None = None):
        self.mlflow = _mlflow()
        self.mlflow.set_tracking_uri(tracking_uri(db_url))
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
        self.client.set_terminated(self.run_id, status={"finished": "FINISHED", "running": "RUNNING"}.get(status, "FAILED"))
