"""On a real SLURM cluster with a real PostgreSQL server (both started by tests/conftest.py):
a table as job arrays with its results in PostgreSQL equals the local run; a distillation
student's array waits for its teacher; an array task stopped by the signal submitit handles
(preemption, time limit) checkpoints, requeues itself and resumes to the same metrics; 100 runs
are submitted in seconds; `repro status` shows the cluster's view."""
import json
import os
import subprocess
import sys
import time

import pytest

REPRO = [sys.executable, "-m", "repro.cli"]


def repro(*argv, cwd, env=None, timeout=600):
    done = subprocess.run(REPRO + list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


@pytest.fixture
def job_env(slurm_env):
    env = {**os.environ, **slurm_env.env, "REPRO_THREADS": "1"}
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    return env


def cells(out: str) -> dict:
    return {(c["row"], c["metric"]): c["reproduced"] for c in json.loads(out)["cells"] if c["profile"] == "smoke"}


def query(url: str, sql: str) -> list:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_a_table_on_slurm_with_postgresql_equals_the_local_run(job_env, fresh_postgres_db, tmp_path):
    rows = "baseline,relu,prelu_rev_prog_distill"
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    done = repro("run", "--paper", "bulat2019", "--table", "1", "--rows", rows, "--profile", "smoke", "--executor", "slurm",
                 "--db", fresh_postgres_db, "--wait", cwd=cluster, env=job_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "as job array" in done.stdout and "afterok" in done.stdout and "done: 4 finished" in done.stdout
    assert "postgres@127.0.0.1" in done.stdout
    # the student started only once its teacher had finished (a second array, afterok)
    teacher_end, student_start = query(fresh_postgres_db, "select (select finished_at from runs where row_id = 'real'), "
                                                          "(select started_at from runs where row_id = 'prelu_rev_prog_distill')")[0]
    assert student_start >= teacher_end
    status = repro("status", "--db", fresh_postgres_db, cwd=cluster, env=job_env).stdout
    assert status.count("completed") == 4 and status.count("slurm") == 4
    # MLflow tracked the runs in the same server, in a schema of its own
    assert query(fresh_postgres_db, "select count(*) from mlflow.runs where status = 'FINISHED'") == [(4,)]

    local = tmp_path / "local"
    local.mkdir()
    done = repro("run", "--paper", "bulat2019", "--table", "1", "--rows", rows, "--profile", "smoke", "--jobs", "2", "--quiet",
                 cwd=local, env=job_env)
    assert done.returncode == 0
    on_cluster = repro("compare", "--paper", "bulat2019", "--table", "1", "--format", "json", "--db", fresh_postgres_db,
                       cwd=cluster, env=job_env).stdout
    here = repro("compare", "--paper", "bulat2019", "--table", "1", "--format", "json", cwd=local, env=job_env).stdout
    assert cells(on_cluster) == cells(here) and len(cells(here)) == 4  # the same table, to the last digit
    text = repro("compare", "--paper", "bulat2019", "--table", "1", "--db", fresh_postgres_db, cwd=cluster, env=job_env).stdout
    assert text == repro("compare", "--paper", "bulat2019", "--table", "1", cwd=local, env=job_env).stdout


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)


def test_an_array_task_stopped_by_its_signal_requeues_and_resumes_to_the_same_metrics(job_env, fresh_postgres_db, tmp_path):
    # The same run uninterrupted, on the other core meanwhile: the reference for the metrics.
    local = tmp_path / "local"
    local.mkdir()
    straight_run = subprocess.Popen(REPRO + ["run", "--paper", "bulat2019", "--table", "1", "--rows", "real", "--profile", "proxy",
                                             "--seeds", "1", "--jobs", "1", "--quiet"], cwd=local, env=job_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    done = repro("run", "--paper", "bulat2019", "--table", "1", "--rows", "real", "--profile", "proxy", "--seeds", "2",
                 "--executor", "slurm", "--db", fresh_postgres_db, cwd=cluster, env=job_env)
    assert done.returncode == 0 and "submitted 2 run(s) as job array" in done.stdout
    array = done.stdout.split("as job array ")[1].split()[0]
    subprocess.run(["scancel", f"{array}_1"], check=True, env=job_env)  # seed 1's core goes to the reference run
    epochs = "select count(*) from metrics m join runs r on r.id = m.run_pk where r.seed = 0 and m.step is not null"
    wait_for(lambda: query(fresh_postgres_db, epochs)[0][0] >= 8, 120, "seed 0's first epoch")  # 8 metrics an epoch
    time.sleep(1.5)  # into its second epoch
    [(job_id,)] = query(fresh_postgres_db, "select job_id from runs where seed = 0")
    assert "_" in job_id  # an array task
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, env=job_env)  # what SLURM sends before a time limit
    wait_for(lambda: query(fresh_postgres_db, "select status from runs where seed = 0")[0][0] == "requeued", 60, "the requeue")
    [(error,)] = query(fresh_postgres_db, "select error from runs where seed = 0")
    assert "checkpoint saved" in error and "after batch" in error  # stopped mid-epoch
    # SLURM holds a requeued job back a while (its begin time): let it start now
    wait_for(lambda: subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=job_env,
                                    capture_output=True).returncode == 0, 60, "scontrol update")
    wait_for(lambda: query(fresh_postgres_db, "select status from runs where seed = 0")[0][0] == "finished", 300,
             "the run to finish")
    [(attempts, duration)] = query(fresh_postgres_db, "select attempts, duration_s from runs where seed = 0")
    assert attempts == 2 and duration > 0
    log = next((cluster / ".repro" / "jobs").glob(f"{job_id}_0_log.out")).read_text()
    assert "requeued: stopped" in log and "resuming from its checkpoint" in log

    output, _ = straight_run.communicate(timeout=300)
    assert straight_run.returncode == 0 and "Traceback" not in output, output
    final = "select m.name, m.value from metrics m join runs r on r.id = m.run_pk where r.seed = 0 and m.step is null"
    resumed = dict(query(fresh_postgres_db, final))
    straight = dict(query(f"sqlite:///{local / 'results.db'}", final))
    assert resumed == straight and "pckh_total" in resumed  # bit for bit


def test_100_runs_are_submitted_as_arrays_in_seconds(job_env, fresh_postgres_db, tmp_path):
    done = repro("run", "--paper", "bulat2019", "--table", "1", "--profile", "smoke", "--seeds", "13", "--executor", "slurm",
                 "--db", fresh_postgres_db, "--array-parallelism", "2", cwd=tmp_path, env=job_env)
    arrays = sorted({job.split("_")[0] for (job,) in query(fresh_postgres_db, "select job_id from runs where job_id is not null")})
    try:
        assert done.returncode == 0, done.stderr
        line = next(line for line in done.stdout.splitlines() if line.startswith("submitted 104 run(s) in "))
        assert "planned, stored and submitted" in line
        # seconds, even beside the suite's other worker: the bound catches a round trip to SLURM or the database per run
        seconds = float(line.split(" in ")[1].split(" s")[0])
        assert seconds < 30, line
        assert len(arrays) == 2  # the wave, and the distillation students after their teacher
    finally:  # never leave 104 runs queued on the cluster the next tests use
        if arrays:
            subprocess.run(["scancel", *arrays], check=True, env=job_env)
    time.sleep(2)
    status = repro("status", "--db", fresh_postgres_db, cwd=tmp_path, env=job_env).stdout
    assert "interrupted" in status  # jobs gone without finishing: they run again on the next `repro run`
    [(left,)] = query(fresh_postgres_db, "select count(*) from runs where status in ('pending', 'running')")
    assert left == 0
