"""Turn table rows x seeds into jobs, hand them to a submitit executor, record the results.

The executor is only a choice: ``local`` (subprocesses, one at a time so 2 cores are not
oversubscribed), ``debug`` (in-process, for tests). A run is identified by the hash of its
resolved config: a finished run is skipped unless ``force``; a failed, diverged or interrupted
one runs again, and an interrupted one resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import submitit
from sqlalchemy import delete, select

from . import db as dbm
from .config import RunConfig, resolve
from .errors import ReproError
from .paths import jobs_dir, run_dir
from .plugins import Paper, Table
from .tasks import get_task

EXECUTORS = ("local", "debug")


@dataclass
class Plan:
    table: Table
    waves: list[list[RunConfig]]  # teachers first: a wave only starts once the one before has finished

    @property
    def runs(self) -> list[RunConfig]:
        return [rc for wave in self.waves for rc in wave]


def plan_runs(paper: Paper, table_id: str, row_ids: list[str] | None, profile: str, seeds: int) -> Plan:
    """Resolve and validate every run before anything is stored (bad input leaves the DB untouched)."""
    table = paper.table(table_id)
    if seeds < 1:
        raise ReproError(f"--seeds must be at least 1, got {seeds}")
    if row_ids:
        rows = [table.row(r) for r in row_ids]
    else:
        rows = [r for r in table.rows if r.runnable]
    if not rows:
        raise ReproError(f"{paper.id} table {table.id} has no runnable row")
    configs = {}
    for row in rows:
        for seed in range(seeds):
            rc = resolve(table, row, profile, seed)
            configs[rc.hash] = rc
    teachers = {}
    for rc in configs.values():
        distill = rc.config["train"].get("distill")
        if distill and distill["teacher_hash"] not in configs:
            teacher = resolve(table, table.row(distill["teacher"]), profile, distill.get("teacher_seed", 0))
            teachers[teacher.hash] = teacher
    configs.update(teachers)
    task = get_task(table.task)
    for rc in configs.values():
        if profile != "structure":  # measuring a model needs no data
            task.check_data(rc.config)
    first = [rc for rc in configs.values() if not rc.config["train"].get("distill")]
    second = [rc for rc in configs.values() if rc.config["train"].get("distill")]
    return Plan(table=table, waves=[w for w in (first, second) if w])


def make_executor(name: str):
    if name not in EXECUTORS:
        raise ReproError(f"unknown executor '{name}': choose from {', '.join(EXECUTORS)}")
    folder = jobs_dir() / "%j"
    if name == "debug":
        return submitit.DebugExecutor(folder=folder)
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=7 * 24 * 60)
    return executor


def execute(plan: Plan, db_url: str | None, executor_name: str, force: bool = False, echo=print) -> dict[str, int]:
    """Run the plan; returns counts by outcome. Each job writes its own results to the database."""
    executor = make_executor(executor_name)
    from .tracking import experiment_id
    experiment = experiment_id(plan.table.paper_id, plan.table.id, db_url)
    counts = {"skipped": 0, "finished": 0, "failed": 0, "diverged": 0}
    total = len(plan.runs)
    done = 0
    for wave in plan.waves:
        todo = []
        with dbm.session(db_url) as db:
            for rc in wave:
                record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == rc.hash))
                if record is not None and record.status == "finished" and not force:
                    counts["skipped"] += 1
                    done += 1
                    echo(f"[{done}/{total}] {_label(rc)}: finished earlier, skipped (--force runs it again)")
                    continue
                if record is not None and record.status == "running" and _alive(record):
                    raise ReproError(f"run {rc.hash} ({_label(rc)}) is running in process {record.job_id}: wait for it or stop it")
                if record is None:
                    record = dbm.RunRecord(hash=rc.hash, **_identity(rc))
                    db.add(record)
                elif force:
                    db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == record.id))
                    record.mlflow_run_id = None
                    shutil.rmtree(run_dir(rc.hash), ignore_errors=True)
                record.config, record.assumptions = rc.config, rc.assumptions
                record.status, record.error, record.executor = "pending", None, executor_name
                todo.append(rc)
            db.commit()
        # A wave is one job array; locally it is cut into arrays of one, since a run already
        # uses every core. A cluster executor would submit the whole wave at once.
        size = 1 if executor_name in ("local", "debug") else max(len(todo), 1)
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            n = len(chunk)
            jobs = executor.map_array(run_job, [rc.hash for rc in chunk], [db_url] * n, [experiment] * n, [executor_name] * n)
            for job, rc in zip(jobs, chunk):
                try:
                    outcome = _wait(job, rc, db_url)
                except KeyboardInterrupt:
                    job.cancel(check=False)  # the checkpoint stays: the next invocation resumes
                    raise
                counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
                done += 1
                echo(f"[{done}/{total}] {_label(rc)}: {_describe(outcome, plan.table.metrics)}")
    return counts


def _wait(job, rc: RunConfig, db_url: str | None) -> dict:
    try:
        return job.result()
    except Exception as exc:  # the job process itself died (killed, out of memory)
        message = f"job {job.job_id} died: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        with dbm.session(db_url) as db:
            record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == rc.hash))
            record.status, record.error = "failed", message
            db.commit()
        return {"status": "failed", "error": message}


def run_job(run_hash: str, db_url: str | None, experiment: str, executor_name: str) -> dict:
    """The job: train one run and record it. Never raises (a debug executor would open pdb)."""
    from .plugins import discover
    from .tracking import Tracker
    from .train import Diverged, measure_run, train_run

    started = time.time()
    discover()  # a fresh job process: plugins register their blocks before any model is built
    with dbm.session(db_url) as db:
        record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == run_hash))
        config = record.config
        record.status, record.started_at, record.host = "running", dbm.utcnow(), socket.gethostname()
        record.git_commit, record.run_dir = _git_commit(), str(run_dir(run_hash))
        record.job_id = str(os.getpid()) if executor_name == "local" else _job_id()
        db.commit()
        mlflow_run_id = record.mlflow_run_id
    tracker = None
    status, error, final = "failed", None, {}
    try:
        identity = config["run"]
        name = f"{identity['row']}-s{identity['seed']}-{identity['profile']}"
        tracker = Tracker(db_url, experiment, name, config, mlflow_run_id)
        _update(db_url, run_hash, mlflow_run_id=tracker.run_id)

        def log_metrics(values: dict, step: int) -> None:
            tracker.log_metrics(values, step)
            with dbm.session(db_url) as db:
                rec = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == run_hash))
                db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == rec.id, dbm.MetricRecord.step == step))
                db.add_all(dbm.MetricRecord(run_pk=rec.id, name=k, value=float(v), step=step) for k, v in values.items())
                db.commit()

        folder = run_dir(run_hash)
        if identity["profile"] == "structure":
            final = measure_run(config)
            tracker.log_metrics(final)
        else:
            final = train_run(config, folder, log_metrics)
            tracker.log_artifacts([folder / "config.json", folder / "model.pt"])
        status = "finished"
    except Diverged as exc:
        status, error = "diverged", str(exc)
    except Exception as exc:
        status = "failed"
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-8)}"
    finally:
        if tracker is not None:
            try:
                tracker.finish(status)
            except Exception:  # MLflow trouble must not hide the run's own outcome
                pass
    duration = time.time() - started
    with dbm.session(db_url) as db:
        rec = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == run_hash))
        rec.status, rec.error, rec.finished_at, rec.duration_s = status, error, dbm.utcnow(), duration
        db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == rec.id, dbm.MetricRecord.step.is_(None)))
        db.add_all(dbm.MetricRecord(run_pk=rec.id, name=k, value=float(v), step=None) for k, v in final.items())
        db.commit()
    return {"status": status, "error": error, "metrics": final, "duration_s": duration}


def _update(db_url: str | None, run_hash: str, **fields) -> None:
    with dbm.session(db_url) as db:
        rec = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == run_hash))
        for key, value in fields.items():
            setattr(rec, key, value)
        db.commit()


def _identity(rc: RunConfig) -> dict:
    i = rc.identity
    return {"paper_id": i["paper"], "table_id": i["table"], "row_id": i["row"], "profile": i["profile"], "seed": i["seed"]}


def _label(rc: RunConfig) -> str:
    i = rc.identity
    return f"{i['paper']} table {i['table']} row {i['row']} seed {i['seed']} ({i['profile']})"


def _describe(outcome: dict, metrics) -> str:
    """One line for a finished job: its status, time and the table's own metrics."""
    took = f" in {outcome['duration_s']:.0f} s" if "duration_s" in outcome else ""
    if outcome["status"] == "finished":
        shown = ", ".join(f"{k} {v:.3g}" for k, v in outcome["metrics"].items() if k in metrics)
        return f"finished{took}: {shown}"
    first_line = (outcome.get("error") or "").splitlines()[0] if outcome.get("error") else ""
    return f"{outcome['status']}{took}: {first_line}"


def _alive(record: dbm.RunRecord) -> bool:
    """Is a 'running' record's local process still there? Otherwise the run was interrupted."""
    if record.executor != "local" or record.host != socket.gethostname() or not (record.job_id or "").isdigit():
        return False
    try:
        os.kill(int(record.job_id), 0)
    except OSError:
        return False
    return int(record.job_id) != os.getpid()


def _job_id() -> str:
    try:
        return str(submitit.JobEnvironment().job_id)
    except Exception:
        return f"inproc-{os.getpid()}"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
