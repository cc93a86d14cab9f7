"""Turn table rows x seeds into jobs, hand them to an executor, follow them.

The executor is a registered name (repro/executors.py). Locally, ``jobs`` runs go at once, each
on its share of the cores, and a run that others wait for (a distillation teacher) first. On a
cluster, a wave of runs is one job array and the runs that wait for others a second array that
starts after them (``afterok``); the command submits and returns, or follows the jobs with
``wait``. A run is identified by the hash of its resolved config: a finished run is skipped
unless ``force``; a failed, diverged or interrupted one runs again, and an interrupted one
resumes from its checkpoint. Jobs claim their run atomically (repro/recorder.py), so two
invocations never train the same run. The database URL reaches the jobs through the
environment (``REPRO_DB``), never through a file: its password stays off the disk.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import submitit
from sqlalchemy import and_, delete, select, update
from sqlalchemy.orm import selectinload

from . import db as dbm
from .cluster import LIVE, local_alive, slurm_states
from .config import RunConfig, resolve
from .errors import ReproError
from .executors import default_jobs
from .job import RunJob
from .paths import jobs_dir, run_dir
from .plugins import Paper, Table
from .profiles import get_profile
from .registry import EXECUTORS
from .results import STRUCTURE_MEASURES
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


def executor_kind(name: str):
    if name not in EXECUTORS:
        raise ReproError(f"unknown executor '{name}': choose from {', '.join(EXECUTORS.names())}")
    return EXECUTORS[name]


def execute(plan: Plan, db_url: str | None, executor_name: str, force: bool = False, jobs: int | None = None,
            echo: Callable[[str], None] = print, quiet: bool = False, options: dict | None = None,
            wait: bool = True) -> dict[str, int]:
    """Run (or, on a cluster, submit) the plan; returns counts by outcome. Each job writes its
    own results. Unless ``quiet``, every epoch of every followed run is echoed as its job reports it."""
    previous = os.environ.get("REPRO_DB")
    os.environ["REPRO_DB"] = dbm.database_url(db_url)  # the jobs' database, through their environment
    try:
        return _execute(plan, db_url, executor_name, force, jobs, echo, quiet, options, wait)
    finally:
        if previous is None:
            os.environ.pop("REPRO_DB", None)
        else:
            os.environ["REPRO_DB"] = previous


def _execute(plan: Plan, db_url: str | None, executor_name: str, force: bool, jobs: int | None,
             echo: Callable[[str], None], quiet: bool, options: dict | None, wait: bool) -> dict[str, int]:
    kind = executor_kind(executor_name)
    executor = kind.make(jobs_dir(), options or {})
    from .tracking import experiment_id
    experiment = experiment_id(plan.table.paper_id, plan.table.id, db_url)
    counts = {"skipped": 0, "finished": 0, "failed": 0, "diverged": 0}
    todo, finished = _claim(plan, db_url, executor_name, force, counts, echo)
    follow = Follower(plan, db_url, counts, echo, quiet, done=counts["skipped"] + counts.get("taken", 0))
    if kind.arrays:
        running = _submit_arrays(plan, todo, finished, executor, experiment, executor_name, db_url, echo)
        counts["submitted"] = len(running)
        if wait:
            follow.until_done(running)
        return counts
    in_process = kind.in_process
    jobs = 1 if in_process else max(1, jobs or default_jobs())
    threads = max(1, (os.cpu_count() or 1) // jobs)
    running: dict[str, tuple] = {}  # hash -> (job, RunConfig)
    try:
        while todo or running:
            for rc in list(todo):
                if len(running) >= jobs:
                    break
                waiting = [d.hash for d in rc.dependencies if d.hash not in finished]
                elsewhere = [h for h in waiting if h not in {r.hash for r in todo} and h not in running]
                states = _states(db_url, elsewhere)  # what another invocation trains, or what failed here
                finished.update(h for h in elsewhere if states.get(h) == "finished")
                failed = [h for h in elsewhere if states.get(h) not in ("finished", "pending", "running")]
                if failed:
                    todo.remove(rc)  # a dependency failed: this run cannot start
                    follow.failed_before_start(rc, f"needs run {failed[0]}, which did not finish")
                    continue
                if any(h not in finished for h in waiting):
                    continue
                todo.remove(rc)
                job = executor.submit(RunJob(), rc.hash, None, experiment, executor_name, threads, not (in_process and quiet))
                running[rc.hash] = (job, rc)
                if not in_process:
                    echo(f"started {_label(rc)} (job {job.job_id}, {threads} thread{'s' * (threads > 1)})")
            for run_hash, (job, rc) in list(running.items()):
                if in_process or job.done():
                    outcome = follow.finished(job, rc)
                    del running[run_hash]
                    if outcome["status"] == "finished":
                        finished.add(run_hash)
                    if in_process and outcome["status"] == "interrupted":
                        raise KeyboardInterrupt  # Ctrl-C stopped the run in this process: stop here too
                elif not in_process:
                    follow.echo_output(job, rc)
            if (running and not in_process) or (todo and not running):  # jobs to follow, or waiting on another invocation
                time.sleep(0.5)
    except KeyboardInterrupt:
        follow.stop([job for job, _ in running.values()])
        raise
    return counts


class Follower:
    """Echoes the jobs' progress lines and outcomes; counts outcomes."""

    def __init__(self, plan: Plan, db_url: str | None, counts: dict, echo, quiet: bool, done: int):
        self.plan, self.db_url, self.counts, self.echo, self.quiet = plan, db_url, counts, echo, quiet
        self.done, self.offsets = done, {}

    def echo_output(self, job, rc: RunConfig) -> None:
        """Echo the complete lines a job wrote to its stdout since the last call."""
        offset = self.offsets.get(job.job_id, 0)
        try:
            with open(job.paths.stdout, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.offsets[job.job_id] = offset + end
        if self.quiet:
            return
        for line in data[:end].decode(errors="replace").splitlines():
            if line.strip() and not line.startswith("submitit "):  # submitit's own log lines
                self.echo(f"  {_label(rc, short=True)}: {line}")

    def finished(self, job, rc: RunConfig) -> dict:
        if not isinstance(job, submitit.DebugJob):
            self.echo_output(job, rc)
        try:
            outcome = job.result()
        except Exception as exc:  # the job process itself died (killed, out of memory, cancelled)
            text = str(exc).strip()
            message = f"job {job.job_id} died: {type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
            _mark(self.db_url, rc.hash, "interrupted", message, job_id=str(job.job_id))
            outcome = {"status": "interrupted", "error": message}
        self._count(rc, outcome)
        return outcome

    def failed_before_start(self, rc: RunConfig, message: str) -> None:
        _mark(self.db_url, rc.hash, "failed", message, job_id=None)
        self._count(rc, {"status": "failed", "error": message})

    def _count(self, rc: RunConfig, outcome: dict) -> None:
        self.counts[outcome["status"]] = self.counts.get(outcome["status"], 0) + 1
        self.done += 1
        self.echo(f"[{self.done}/{len(self.plan.runs)}] {_label(rc)}: {_describe(outcome, self.plan.table.metrics)}")

    def until_done(self, running: dict[str, tuple]) -> None:
        """Follow submitted (cluster) jobs until each has ended."""
        while running:
            for run_hash, (job, rc) in list(running.items()):
                if job.done():
                    self.finished(job, rc)
                    del running[run_hash]
                else:
                    self.echo_output(job, rc)
            if running:
                time.sleep(2)

    def stop(self, jobs: list) -> None:
        """Interrupted (Ctrl-C, SIGTERM): ask the jobs to stop; each saves a checkpoint at its next
        batch and records itself interrupted. The next invocation resumes them."""
        for job in jobs:
            if isinstance(job, submitit.LocalJob):  # SIGTERM: its controller passes it on to the job
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(job.job_id), signal.SIGTERM)
            else:
                job.cancel(check=False)
        deadline = time.time() + 60
        while time.time() < deadline and not all(job.done() for job in jobs):
            time.sleep(0.5)


def _submit_arrays(plan: Plan, todo: list[RunConfig], finished: set[str], executor, experiment: str, executor_name: str,
                   db_url: str | None, echo) -> dict[str, tuple]:
    """The runs free to start as one job array; the runs that wait for others as a second array
    that starts once those have ended well (``afterok``). Returns hash -> (job, RunConfig)."""
    threads = int(executor.parameters.get("cpus_per_task") or 1)
    first = [rc for rc in todo if all(d.hash in finished for d in rc.dependencies)]
    second = [rc for rc in todo if rc not in first]
    running: dict[str, tuple] = {}
    for runs in (first, second):
        if not runs:
            continue
        after = sorted({str(running[d.hash][0].job_id) for rc in runs for d in rc.dependencies if d.hash in running})
        executor.update_parameters(dependency=f"afterok:{':'.join(after)}" if after else None)
        n = len(runs)
        jobs = executor.map_array(RunJob(), [rc.hash for rc in runs], [None] * n, [experiment] * n, [executor_name] * n,
                                  [threads] * n, [True] * n)
        with dbm.session(db_url) as db:
            for job, rc in zip(jobs, runs):
                db.execute(update(dbm.RunRecord).where(dbm.RunRecord.hash == rc.hash, dbm.RunRecord.status == "pending")
                           .values(job_id=str(job.job_id), executor=executor_name))
            db.commit()
        for job, rc in zip(jobs, runs):
            running[rc.hash] = (job, rc)
        array_id = str(jobs[0].job_id).split("_")[0]
        echo(f"submitted {len(runs)} run(s) as job array {array_id}"
             + (f", starting after job(s) {', '.join(after)} end well (afterok)" if after else ""))
    echo("follow them with 'repro status' (or run again with --wait); 'repro compare' shows what has finished")
    return running


def _claim(plan: Plan, db_url: str | None, executor_name: str, force: bool, counts: dict, echo) -> tuple[list, set]:
    """Store the plan's runs (an insert that ignores existing ones) and mark the ones to do
    pending, each in one conditional statement; returns the runs to do and the hashes already
    finished. A run whose job is gone is marked interrupted first; one another job holds is left."""
    todo, finished = [], set()
    runs = dbm.RunRecord
    with dbm.session(db_url) as db:
        dbm.insert_ignore(db, runs, [{"hash": rc.hash, **_identity(rc), "config": rc.config, "assumptions": rc.assumptions,
                                      "status": "pending", "executor": executor_name, "attempts": 0} for rc in plan.runs],
                          ["hash"])
        db.commit()
        records = {r.hash: r for r in db.scalars(select(runs).where(runs.hash.in_([rc.hash for rc in plan.runs])))}
        states = slurm_states([r.job_id for r in records.values() if r.executor == "slurm" and r.job_id
                               and r.status in ("pending", "running")])
        for number, rc in enumerate(plan.runs, 1):
            record = records[rc.hash]
            if record.status == "finished" and not force:
                counts["skipped"] += 1
                finished.add(rc.hash)
                echo(f"[{number}/{len(plan.runs)}] {_label(rc)}: finished earlier, skipped (--force runs it again)")
                continue
            if record.status in ("pending", "running") and record.job_id and _job_alive(record, states):
                counts["taken"] = counts.get("taken", 0) + 1
                echo(f"[{number}/{len(plan.runs)}] {_label(rc)}: {record.status} in job {record.job_id} "
                     f"(another invocation): left to it")
                continue
            again = record.status == "finished"  # and force: its results and checkpoints go
            allowed = dbm.RETRYABLE + ("running",) + (("finished",) if force else ())
            claimed = db.execute(update(runs).where(runs.hash == rc.hash, runs.status.in_(allowed)).values(
                status="pending", config=rc.config, assumptions=rc.assumptions, error=None, executor=executor_name,
                job_id=None)).rowcount
            if claimed != 1:
                continue
            if again:
                db.execute(delete(dbm.MetricRecord).where(dbm.MetricRecord.run_pk == record.id))
                db.execute(update(runs).where(runs.id == record.id).values(mlflow_run_id=None, duration_s=None, attempts=0))
                shutil.rmtree(run_dir(rc.hash), ignore_errors=True)
            todo.append(rc)
        db.commit()
    return todo, finished


def cluster_view(db_url: str | None) -> list[tuple[dbm.RunRecord, str]]:
    """Every run with its job's live state (SLURM's through squeue / sacct; a local process alive
    or gone). A run left pending or running by a job that is gone is marked interrupted (in one
    conditional statement): the next ``repro run`` runs it again, resuming from its checkpoint."""
    runs = dbm.RunRecord
    with dbm.session(db_url) as db:
        records = list(db.scalars(select(runs).options(selectinload(runs.metrics)).order_by(runs.id)))
    states = slurm_states([r.job_id for r in records if r.executor == "slurm" and r.job_id])
    view = []
    for record in records:
        if record.executor == "slurm" and record.job_id:
            state = states.get(record.job_id, "unknown to squeue and sacct")
        elif record.executor == "local" and record.job_id and record.status in ("pending", "running"):
            state = "running" if local_alive(record.job_id, record.host) else "gone"
        else:
            state = ""
        if record.status in ("pending", "running") and record.job_id and record.executor in ("slurm", "local") \
                and not _job_alive(record, states):
            _mark(db_url, record.hash, "interrupted", f"its job {record.job_id} ended without finishing it ({state or 'gone'})",
                  job_id=record.job_id)
            record.status = "interrupted"
        view.append((record, state))
    return view


def _job_alive(record: dbm.RunRecord, states: dict[str, str]) -> bool:
    if record.executor == "slurm":
        return states.get(record.job_id) in LIVE
    if record.executor == "local":
        return local_alive(record.job_id, record.host)
    return False


_ANY_JOB = object()


@dbm.retry_locked
def _mark(db_url: str | None, run_hash: str, status: str, message: str, job_id=_ANY_JOB) -> None:
    """Record an outcome the job could not record itself, over a run not yet finished; with
    ``job_id``, only while that job (None: no job yet) holds it."""
    runs = dbm.RunRecord
    condition = and_(runs.hash == run_hash, runs.status.in_(("pending", "running")))
    if job_id is not _ANY_JOB:
        condition = and_(condition, runs.job_id.is_(None) if job_id is None else runs.job_id == job_id)
    with dbm.session(db_url) as db:
        db.execute(update(runs).where(condition).values(status=status, error=message))
        db.commit()


def _states(db_url: str | None, hashes: list[str]) -> dict[str, str]:
    if not hashes:
        return {}
    with dbm.session(db_url) as db:
        return dict(db.execute(select(dbm.RunRecord.hash, dbm.RunRecord.status).where(dbm.RunRecord.hash.in_(hashes))).all())


def _identity(rc: RunConfig) -> dict:
    i = rc.identity
    return {"paper_id": i["paper"], "table_id": i["table"], "row_id": i["row"], "profile": i["profile"], "seed": i["seed"]}


def _label(rc: RunConfig, short: bool = False) -> str:
    i = rc.identity
    if short:
        return f"{i['row']} seed {i['seed']}"
    return f"{i['paper']} table {i['table']} row {i['row']} seed {i['seed']} ({i['profile']})"


def _describe(outcome: dict, metrics) -> str:
    """One line for a finished job: its status, time and the table's own metrics (a structure run's
    measures where it has none of them)."""
    took = f" in {outcome['duration_s']:.0f} s" if outcome.get("duration_s") else ""
    if outcome["status"] == "finished":
        found = outcome["metrics"]
        names = [k for k in found if k in metrics] or [k for k in STRUCTURE_MEASURES if k in found]  # a measured model
        return f"finished{took}: " + ", ".join(f"{k} {found[k]:.3g}" for k in names)
    first_line = (outcome.get("error") or "").splitlines()[0] if outcome.get("error") else ""
    return f"{outcome['status']}{took}: {first_line}"
