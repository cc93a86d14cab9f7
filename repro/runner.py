"""Turn table rows x seeds into jobs, hand them to a submitit executor, record the results.

The executor is a registered name (repro/executors.py): ``local`` (one subprocess a run,
``jobs`` at once, the cores shared among them), ``debug`` (in-process, one at a time, for tests).
A run is identified by the hash of its resolved config: a finished run is skipped unless
``force``; a failed, diverged or interrupted one runs again, and an interrupted one resumes from
its last epoch checkpoint. A run that depends on others (a distillation student on its teacher)
starts once they have finished.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import submitit
from sqlalchemy import delete, select

from . import db as dbm
from .config import RunConfig, resolve
from .errors import ReproError
from .executors import IN_PROCESS, default_jobs
from .paths import CONFIG_FILE, FINAL_MODEL, jobs_dir, run_dir
from .plugins import Paper, Table
from .profiles import get_profile
from .registry import EXECUTORS
from .tasks import get_task


@dataclass
class Plan:
    table: Table
    runs: list[RunConfig]  # every run a dependency needs comes before it

    @property
    def hashes(self) -> set[str]:
        return {rc.hash for rc in self.runs}


def plan_runs(paper: Paper, table_id: str, row_ids: list[str] | None, profile: str, seeds: int) -> Plan:
    """Resolve and validate every run before anything is stored (bad input leaves the DB untouched)."""
    table = paper.table(table_id)
    if seeds < 1:
        raise ReproError(f"--seeds must be at least 1, got {seeds}")
    rows = [table.row(r) for r in row_ids] if row_ids else [r for r in table.rows if r.runnable]
    if not rows:
        raise ReproError(f"{paper.id} table {table.id} has no runnable row")
    configs: dict[str, RunConfig] = {}

    def add(rc: RunConfig) -> None:
        for dependency in rc.dependencies:
            add(dependency)
        configs.setdefault(rc.hash, rc)

    for row in rows:
        for seed in range(seeds):
            add(resolve(table, row, profile, seed))
    task = get_task(table.task)
    if get_profile(profile).needs_data:
        for rc in configs.values():
            task.check_data(rc.config)
    needed = {d.hash for rc in configs.values() for d in rc.dependencies}
    # What others wait for first (a teacher), then the table's order; a stable sort keeps it.
    return Plan(table=table, runs=sorted(configs.values(), key=lambda rc: rc.hash not in needed))


def make_executor(name: str) -> submitit.Executor:
    if name not in EXECUTORS:
        raise ReproError(f"unknown executor '{name}': choose from {', '.join(EXECUTORS.names())}")
    return EXECUTORS[name](jobs_dir())


def execute(plan: Plan, db_url: str | None, executor_name: str, force: bool = False, jobs: int | None = None,
            echo: Callable[[str], None] = print, quiet: bool = False) -> dict[str, int]:
    """Run the plan; returns counts by outcome. Each job writes its own results to the database.
    Unless ``quiet``, every epoch of every run is echoed as the job reports it."""
    executor = make_executor(executor_name)
    in_process = executor_name in IN_PROCESS
    jobs = 1 if in_process else max(1, jobs or default_jobs())
    threads = max(1, (os.cpu_count() or 1) // jobs)
    from .tracking import experiment_id
    experiment = experiment_id(plan.table.paper_id, plan.table.id, db_url)
    counts = {"skipped": 0, "finished": 0, "failed": 0, "diverged": 0}
    total, done = len(plan.runs), 0
    todo, finished = _claim(plan, db_url, executor_name, force, counts, echo)
    done = counts["skipped"]
    running: dict[str, tuple] = {}  # hash -> (job, RunConfig, stdout offset)
    try:
        while todo or running:
            for rc in list(todo):
                if len(running) >= jobs:
                    break
                waiting = [d.hash for d in rc.dependencies if d.hash not in finished]
                if any(h not in {r.hash for r in todo} and h not in running for h in waiting):
                    todo.remove(rc)  # a dependency failed: this run cannot start
                    message = f"needs run {waiting[0]}, which did not finish"
                    _record_failure(db_url, rc.hash, message)
                    counts["failed"] += 1
                    done += 1
                    echo(f"[{done}/{total}] {_label(rc)}: failed: {message}")
                    continue
                if waiting:
                    continue
                todo.remove(rc)
                job = executor.submit(run_job, rc.hash, db_url, experiment, executor_name, threads, not (in_process and quiet))
                running[rc.hash] = (job, rc, 0)
                if not in_process:
                    echo(f"started {_label(rc)} (job {job.job_id}, {threads} thread{'s' * (threads > 1)})")
            for run_hash, (job, rc, offset) in list(running.items()):
                if not in_process:
                    offset = _echo_new_lines(job, offset, _label(rc, short=True), echo if not quiet else None)
                    running[run_hash] = (job, rc, offset)
                if in_process or job.done():
                    outcome = _wait(job, rc, db_url)
                    if not in_process:
                        _echo_new_lines(job, offset, _label(rc, short=True), echo if not quiet else None)
                    del running[run_hash]
                    counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
                    if outcome["status"] == "finished":
                        finished.add(run_hash)
                    done += 1
                    echo(f"[{done}/{total}] {_label(rc)}: {_describe(outcome, plan.table.metrics)}")
            if running and not in_process:
                time.sleep(0.5)
    except KeyboardInterrupt:
        for job, _, _ in running.values():
            job.cancel(check=False)  # the checkpoints stay: the next invocation resumes
        raise
    return counts


def _claim(plan: Plan, db_url: str | None, executor_name: str, force: bool, counts: dict, echo) -> tuple[list, set]:
    """Mark the plan's runs pending (skipping finished ones unless ``force``); returns the runs
    to do and the hashes already finished."""
    todo, finished = [], set()
    with dbm.session(db_url) as db:
        for rc in plan.runs:
            record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == rc.hash))
            if record is not None and record.status == "finished" and not force:
                counts["skipped"] += 1
                finished.add(rc.hash)
                echo(f"[{counts['skipped']}/{len(plan.runs)}] {_label(rc)}: finished earlier, skipped (--force runs it again)")
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
    return todo, finished


def _echo_new_lines(job, offset: int, prefix: str, echo) -> int:
    """Echo the complete lines a local job wrote to its stdout since ``offset``."""
    try:
        with open(job.paths.stdout, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1
    if echo:
        for line in data[:end].decode(errors="replace").splitlines():
            if line.strip() and not line.startswith("submitit "):  # submitit's own log lines
                echo(f"  {prefix}: {line}")
    return offset + end


def _wait(job, rc: RunConfig, db_url: str | None) -> dict:
    try:
        return job.result()
    except Exception as exc:  # the job process itself died (killed, out of memory)
        message = f"job {job.job_id} died: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        _record_failure(db_url, rc.hash, message)
        return {"status": "failed", "error": message}


def _record_failure(db_url: str | None, run_hash: str, message: str) -> None:
    with dbm.session(db_url) as db:
        record = db.scalar(select(dbm.RunRecord).where(dbm.RunRecord.hash == run_hash))
        record.status, record.error = "failed", message
        db.commit()


def run_job(run_hash: str, db_url: str | None, experiment: str, executor_name: str, threads: int | None = None,
            echo_progress: bool = True) -> dict:
    """The job: train (or measure) one run and record it. Never raises (a debug executor would open pdb)."""
    from .plugins import discover
    from .recorder import Recorder
    from .train import Diverged, measure_run, train_run

    started = time.time()
    discover()  # a fresh job process: plugins register their blocks and recipes before any model is built
    job_id = str(os.getpid()) if executor_name == "local" else _job_id()
    recorder = Recorder(db_url, run_hash, experiment, executor_name, job_id)
    status, error, final = "failed", None, {}
    try:
        config = recorder.start()
        profile = get_profile(config["run"]["profile"])
        if profile.trains:
            folder = run_dir(run_hash)
            final = train_run(config, folder, recorder.log, progress=_print if echo_progress else None, threads=threads)
            recorder.artifacts([folder / CONFIG_FILE, folder / FINAL_MODEL])
        else:
            final = measure_run(config)
            recorder.log(final)
        status = "finished"
    except Diverged as exc:
        status, error = "diverged", str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-8)}"
    duration = time.time() - started
    recorder.finish(status, final, error, duration)
    return {"status": status, "error": error, "metrics": final, "duration_s": duration}


def _print(line: str) -> None:
    print(line, flush=True)  # a local job's stdout is a file, read by the submitting process


def _identity(rc: RunConfig) -> dict:
    i = rc.identity
    return {"paper_id": i["paper"], "table_id": i["table"], "row_id": i["row"], "profile": i["profile"], "seed": i["seed"]}


def _label(rc: RunConfig, short: bool = False) -> str:
    i = rc.identity
    if short:
        return f"{i['row']} seed {i['seed']}"
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
