"""Faults and bad input: one line `repro: error: ...`, exit status 2, nothing written, no
password shown; concurrent invocations neither crash nor train a run twice."""
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from repro.tasks.pose import PoseTask

REPRO = [sys.executable, "-m", "repro.cli"]



def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("repro: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def good_db(tmp_path_factory):
    """A real results database with one finished smoke run."""
    folder = tmp_path_factory.mktemp("gooddb")
    code = subprocess.run(REPRO + ["run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline", "--profile", "smoke",
                                   "--executor", "debug", "--quiet"], cwd=folder, capture_output=True, text=True).returncode
    assert code == 0
    return folder / "results.db"


def damaged(path: Path, how: str, source: Path) -> Path:
    if how == "random bytes":
        path.write_bytes(os.urandom(40_000))
    elif how == "an empty file":
        path.write_bytes(b"")
    elif how == "truncated":
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif how == "garbage after the header":
        data = bytearray(source.read_bytes())
        data[4096:] = os.urandom(len(data) - 4096)
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["random bytes", "an empty file", "truncated", "garbage after the header"])
@pytest.mark.parametrize("command", [["run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline", "--profile", "smoke",
                                      "--executor", "debug"], ["status"], ["compare", "--paper", "bulat2019", "--table", "1"]])
def test_a_damaged_database_is_one_line_and_left_as_it_was(workdir, cli, good_db, how, command):
    path = damaged(workdir / "bad.db", how, good_db)
    before = path.read_bytes()
    code, out, err = cli(*command, "--db", f"sqlite:///{path}")
    one_line_error(code, err, str(path))
    assert "Traceback" not in out + err and path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_a_read_only_database_file_is_one_line(workdir, cli, good_db):
    """An immutable file (chattr +i: root cannot write it either)."""
    db = workdir / "results.db"
    shutil.copy(good_db, db)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (chattr +i refused)")
    try:
        before = db.read_bytes()
        for command in (["status"], ["compare", "--paper", "bulat2019", "--table", "1"]):
            code, _, err = cli(*command, "--db", f"sqlite:///{db}")
            one_line_error(code, err, "is read-only")
        assert db.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", str(db)])


def test_a_read_only_database_folder_is_one_line(cli, good_db, monkeypatch):
    """A database on a read-only filesystem (a tmpfs remounted read-only)."""
    folder = Path("/tmp") / f"repro-ro-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        folder.rmdir()
        pytest.skip("cannot mount a read-only filesystem here (mount refused)")
    try:
        shutil.copy(good_db, folder / "results.db")
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        monkeypatch.chdir("/tmp")
        code, _, err = cli("status", "--db", f"sqlite:///{folder / 'results.db'}")
        one_line_error(code, err, "is read-only")
    finally:
        subprocess.run(["umount", str(folder)])
        folder.rmdir()


def test_an_unreachable_postgresql_is_one_line_without_the_password(workdir, cli):
    code, out, err = cli("status", "--db", "postgresql+psycopg://alice:s3cr3t@127.0.0.1:9/results")
    one_line_error(code, err, "postgresql+psycopg://alice:***@127.0.0.1:9/results")
    assert "s3cr3t" not in out + err


def test_a_bad_url_never_shows_its_password(workdir, cli):
    code, out, err = cli("status", "--db", "nosuchdb://bob:hunter2@host/db")
    one_line_error(code, err, "bob:***@host")
    assert "hunter2" not in out + err


@pytest.mark.parametrize("cluster, message", [
    ("nosuchcluster", "unknown cluster profile 'nosuchcluster'"),
    ("{malformed}", "malformed cluster profile"),
    ("{unknown_field}", "unknown field(s) partitoin"),
])
def test_cluster_profile_errors_are_one_line(workdir, cli, cluster, message):
    if cluster == "{malformed}":
        (workdir / "broken.yaml").write_text("partition: [a, b\n")
        cluster = str(workdir / "broken.yaml")
    elif cluster == "{unknown_field}":
        (workdir / "typo.yaml").write_text("partitoin: gpu\n")
        cluster = str(workdir / "typo.yaml")
    code, _, err = cli("run", "--paper", "bulat2019", "--table", "1", "--profile", "smoke", "--executor", "slurm",
                       "--cluster", cluster)
    if shutil.which("sbatch") is None and "sbatch" in err:
        pytest.skip("sbatch is checked first on this machine")
    one_line_error(code, err, message)
    assert not (workdir / "results.db").exists()


def test_missing_sbatch_is_one_line(workdir, cli, monkeypatch):
    monkeypatch.setenv("PATH", str(workdir))  # no sbatch here
    code, _, err = cli("run", "--paper", "bulat2019", "--table", "1", "--profile", "smoke", "--executor", "slurm")
    one_line_error(code, err, "'sbatch' is not on PATH")
    assert not (workdir / "results.db").exists()


def write_plugin(folder: Path, name: str, yaml_bytes: bytes | None) -> None:
    package = folder / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    if yaml_bytes is not None:
        (package / "paper.yaml").write_bytes(yaml_bytes)


@pytest.mark.parametrize("name, yaml_bytes, message", [
    ("noyamlplugin", None, "it has no paper.yaml"),
    ("latinplugin", "id: latin\ntitle: caf\xe9\nyear: 2020\ntables: {}\n".encode("latin-1"), "not UTF-8 text"),
])
def test_a_broken_plugin_is_one_line(workdir, cli, monkeypatch, name, yaml_bytes, message):
    from repro import plugins

    write_plugin(workdir, name, yaml_bytes)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.setattr(plugins, "_PAPERS", None)
    original = plugins._plugin_modules
    monkeypatch.setattr(plugins, "_plugin_modules", lambda: original() + [name])
    code, _, err = cli("list")
    one_line_error(code, err, message)
    monkeypatch.setattr(plugins, "_PAPERS", None)


def test_a_config_value_of_the_wrong_type_stops_before_the_job(workdir, cli, monkeypatch):
    from repro import plugins

    write_plugin(workdir, "typedpaper", b"""id: typedpaper
title: t
year: 2020
tables:
  "1":
    caption: c
    task: pose
    dataset: mpii
    metrics: {pckh_total: {column: PCKh}}
    rows:
      - {id: a, label: a, source_row: a, spec: {train: {weight_decay: none}}}
""")
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.setattr(plugins, "_PAPERS", None)
    original = plugins._plugin_modules
    monkeypatch.setattr(plugins, "_plugin_modules", lambda: original() + ["typedpaper"])
    code, _, err = cli("run", "--paper", "typedpaper", "--table", "1", "--profile", "smoke", "--executor", "debug")
    one_line_error(code, err, "config train.weight_decay: expected a number, got 'none'")
    assert not (workdir / "results.db").exists()
    monkeypatch.setattr(plugins, "_PAPERS", None)


def test_concurrent_invocations_neither_crash_nor_train_a_run_twice(tmp_path):
    """Four `repro run` at once on a new SQLite file, the same rows: no traceback, each run
    stored once and trained once (claimed atomically), all finished; a distillation student waits
    for its teacher even when another invocation trains it."""
    env = {**os.environ, "REPRO_THREADS": "1"}
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    command = REPRO + ["run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline,prelu_rev_prog_distill",
                       "--profile", "smoke", "--jobs", "1", "--quiet"]  # a student waits for a teacher another may train
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert all("Traceback" not in out for out in outputs), "\n".join(outputs)
    assert all(p.returncode == 0 for p in processes), "\n".join(outputs)
    db = sqlite3.connect(tmp_path / "results.db")
    runs = db.execute("select row_id, status, attempts from runs order by row_id").fetchall()
    assert runs == [("baseline", "finished", 1), ("prelu_rev_prog_distill", "finished", 1), ("real", "finished", 1)]
    finals = len(PoseTask.metrics) + 1  # the task's metrics and the last training loss, each stored once
    assert db.execute("select count(*) from metrics where step is null group by run_pk").fetchall() == [(finals,)] * 3
    assert sum("taken" in out or "skipped" in out or "left to it" in out for out in outputs) >= 3
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(mlflow.search_runs(search_all_experiments=True)) == 3  # one MLflow run each: nobody trained twice
