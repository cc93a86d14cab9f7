"""The test services are real: a SLURM cluster that runs submitit's job arrays, a PostgreSQL server that SQLAlchemy and
MLflow use. They are started by tests/conftest.py with jobs/testbed/*.sh; where the machine cannot run them, these skip."""
import os
import subprocess
import time

import pytest


def _wait_done(jobs, timeout_s: float, cluster) -> None:
    """Waits on the jobs' own done() (result files): the states SLURM reports lag; fails with the cluster's view."""
    deadline = time.monotonic() + timeout_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            queue = subprocess.run(["squeue", "-l"], capture_output=True, text=True).stdout
            log = (cluster.folder / "slurmctld.log").read_text()[-3000:]
            pytest.fail(f"SLURM jobs not done after {timeout_s:.0f} s:\n{queue}\nslurmctld.log:\n{log}")
        time.sleep(0.5)


def test_slurm_runs_a_submitit_job_array(slurm_env, tmp_path):
    submitit = pytest.importorskip("submitit")

    def task(x):  # local, so that submitit's cloudpickle sends it by value: the job needs no import of the tests
        import os
        return x * x, os.environ["SLURM_ARRAY_TASK_ID"], os.environ["SLURM_ARRAY_JOB_ID"]

    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=5, slurm_partition=slurm_env.partition, cpus_per_task=1, name="testbed")
    jobs = executor.map_array(task, [1, 2, 3, 4])
    assert len(jobs) == 4
    _wait_done(jobs, 120, slurm_env)
    results = [job.result() for job in jobs]
    assert [square for square, _, _ in results] == [1, 4, 9, 16]
    assert [task_id for _, task_id, _ in results] == ["0", "1", "2", "3"]
    array_id = jobs[0].job_id.split("_")[0]
    assert {array_id for _, _, array_id in results} == {array_id}, "one array job, not four jobs"
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(4)]

    if slurm_env.accounting:
        # Accounting (slurmdbd) records the array; submitit's job state comes from sacct, a second or two behind.
        deadline = time.monotonic() + 30
        while {job.state for job in jobs} != {"COMPLETED"}:
            assert time.monotonic() < deadline, f"submitit states after 30 s: {[job.state for job in jobs]}"
            time.sleep(1)


def test_slurm_clients_see_the_cluster(slurm_env):
    sinfo = subprocess.run(["sinfo", "-h", "-o", "%P %a %D %N %t"], capture_output=True, text=True, check=True).stdout.split()
    assert sinfo[:4] == [f"{slurm_env.partition}*", "up", "1", "localhost"]
    assert sinfo[4] in {"idle", "mix", "alloc"}
    node = subprocess.run(["scontrol", "show", "node", "localhost"], capture_output=True, text=True, check=True).stdout
    assert f"CPUTot={os.cpu_count()}" in node or f"CPUTot={len(os.sched_getaffinity(0))}" in node
    squeue = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True)
    assert squeue.returncode == 0

    # A plain sbatch job, waited on through squeue.
    out = subprocess.run(["sbatch", "--parsable", "--wrap", "hostname", "-o", "/dev/null"], capture_output=True, text=True,
                         check=True).stdout.strip()
    job_id = out.split(";")[0]
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, f"sbatch job {job_id} still queued after 60 s"
        time.sleep(0.3)


def test_slurm_accounting_sacct(slurm_env):
    if not slurm_env.accounting:
        pytest.skip("SLURM runs without accounting (TESTBED_SLURM_ACCOUNTING=0, or no slurmdbd/mariadb-server): "
                    "sacct fails, submitit's job states stay UNKNOWN")
    job_id = subprocess.run(["sbatch", "--parsable", "--wrap", "true", "-o", "/dev/null"], capture_output=True, text=True,
                            check=True).stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    state = ""
    while state != "COMPLETED":
        assert time.monotonic() < deadline, f"sacct state of job {job_id} after 60 s: {state!r}"
        time.sleep(0.5)
        state = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                               check=True).stdout.strip()


def test_postgres_with_sqlalchemy(fresh_postgres_db):
    import sqlalchemy as sa

    assert fresh_postgres_db.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(fresh_postgres_db)
    try:
        assert engine.dialect.name == "postgresql"
        metadata = sa.MetaData()
        rows = sa.Table("rows", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                        sa.Column("score", sa.Float))
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(rows.insert(), [{"name": "a", "score": 0.5}, {"name": "b", "score": 1.5}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(rows.c.name, rows.c.score).order_by(rows.c.id)).all() == [("a", 0.5), ("b", 1.5)]
            assert "PostgreSQL" in conn.execute(sa.text("select version()")).scalar_one()
    finally:
        engine.dispose()


def test_postgres_session_database(postgres_url):
    import sqlalchemy as sa

    assert postgres_url.endswith("/repro_test")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar_one() == "repro_test"
    finally:
        engine.dispose()


def test_mlflow_tracks_into_postgres(fresh_postgres_db, workdir):
    mlflow = pytest.importorskip("mlflow")

    mlflow.set_tracking_uri(fresh_postgres_db)
    try:
        assert mlflow.get_tracking_uri() == fresh_postgres_db
        experiment_id = mlflow.create_experiment("testbed", artifact_location=(workdir / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_param("bits", 1)
            mlflow.log_metric("top1", 0.42)
        client = mlflow.MlflowClient()
        stored = client.get_run(run.info.run_id)
        assert stored.data.params == {"bits": "1"}
        assert stored.data.metrics == {"top1": 0.42}
        assert client.get_experiment_by_name("testbed").experiment_id == experiment_id
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri(None)  # back to the default; it also unsets MLFLOW_TRACKING_URI (workdir restores it)

    import sqlalchemy as sa

    engine = sa.create_engine(fresh_postgres_db)
    try:
        with engine.connect() as conn:  # MLflow's own tables, in PostgreSQL
            assert conn.execute(sa.text("select count(*) from runs")).scalar_one() == 1
    finally:
        engine.dispose()
