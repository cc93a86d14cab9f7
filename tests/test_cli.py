"""The CLI end to end: a smoke run of a whole table, re-runs, compare, and one-line errors."""
import hashlib
import json
import sqlite3

import pytest

from repro import plugins
from repro.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def smoke_table(tmp_path_factory):
    """One smoke run of bulat2019 Table 1 shared by the tests below (the slow part)."""
    folder = tmp_path_factory.mktemp("smoke")
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI"):
        mp.delenv(var, raising=False)
    code = main(["run", "--paper", "bulat2019", "--table", "1", "--profile", "smoke", "--executor", "debug"])
    yield folder, code
    mp.undo()


def test_smoke_run_records_every_row(smoke_table, capsys, monkeypatch):
    folder, code = smoke_table
    monkeypatch.chdir(folder)
    assert code == 0
    con = sqlite3.connect(folder / "results.db")
    runs = con.execute("select row_id, status, mlflow_run_id, id from runs").fetchall()
    assert sorted(r[0] for r in runs) == sorted(["baseline", "relu", "lrelu", "prelu", "prelu_rev", "prelu_rev_prog",
                                                  "prelu_rev_prog_distill", "real"])
    assert all(r[1] == "finished" and r[2] for r in runs)
    finals = con.execute("select count(*) from metrics where name='pckh_total' and step is null").fetchone()[0]
    curves = con.execute("select count(*) from metrics where name='train_loss' and step is not null").fetchone()[0]
    assert finals == 8 and curves >= 8 + 3  # reverse-order rows train two stages
    targets = con.execute("select count(*) from targets t join table_rows r on t.row_pk = r.id "
                          "join paper_tables p on r.table_pk = p.id where p.paper_id = 'bulat2019' and p.table_id = '1'")
    assert targets.fetchone()[0] == 8

    # MLflow holds the same runs, with params and metric curves.
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    for _, _, mlflow_id, _ in runs:
        run = client.get_run(mlflow_id)
        assert run.data.params["conv.binary"] in ("True", "False")
        assert run.data.params["run.profile"] == "smoke"
        assert len(client.get_metric_history(mlflow_id, "pckh_total")) >= 1
    artifacts = [a.path for a in client.list_artifacts(runs[0][2])]
    assert {"config.json", "model.pt"} <= set(artifacts)


def test_second_invocation_skips_finished_runs(smoke_table, capsys, monkeypatch):
    folder, _ = smoke_table
    monkeypatch.chdir(folder)
    code, out, _ = run_cli(capsys, "run", "--paper", "bulat2019", "--table", "1", "--profile", "smoke", "--executor", "debug")
    assert code == 0 and "done: 8 skipped" in out
    con = sqlite3.connect(folder / "results.db")
    assert con.execute("select count(*) from runs").fetchone()[0] == 8


def test_compare_formats(smoke_table, capsys, monkeypatch):
    folder, _ = smoke_table
    monkeypatch.chdir(folder)
    code, out, _ = run_cli(capsys, "compare", "--paper", "bulat2019", "--table", "1", "--format", "json")
    assert code == 0
    result = json.loads(out)
    cells = [c for c in result["cells"] if c["profile"] == "smoke"]
    assert len(cells) == 8 and all(c["reproduced"] is not None and c["n"] == 1 for c in cells)
    assert all(c["delta"] is None for c in cells)  # smoke is never compared number to number
    assert {c["row"]: c["published"] for c in cells}["real"] == 85.6
    assert {v["claim"] for v in result["claims"]} >= {"lrelu_beats_relu", "real_above_all"}
    assert all(v["verdict"] == "inconclusive" for v in result["claims"])  # one seed decides nothing
    for fmt, marker in (("text", "Claims at smoke"), ("markdown", "| row |"), ("csv", "paper,table,row"), ("latex", r"\begin{tabular}")):
        code, out, _ = run_cli(capsys, "compare", "--paper", "bulat2019", "--table", "1", "--format", fmt)
        assert code == 0 and marker in out
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and out.count("finished") == 8


BAD_INPUTS = [
    (["run", "--paper", "nope", "--table", "1"], "unknown paper 'nope'"),
    (["run", "--paper", "bulat2019", "--table", "9"], "unknown table '9'"),
    (["run", "--paper", "bulat2019", "--table", "1", "--rows", "relu,zzz"], "unknown row 'zzz'"),
    (["run", "--paper", "bulat2019", "--table", "1", "--profile", "huge"], "invalid choice: 'huge'"),
    (["run", "--paper", "bulat2019", "--table", "1", "--executor", "cloud"], "invalid choice: 'cloud'"),
    (["run", "--paper", "bulat2019", "--table", "1", "--seeds", "0"], "--seeds must be at least 1"),
    (["run", "--paper", "bulat2019", "--table", "1", "--profile", "paper"], "mpii is not ready: images/: put"),
    (["run", "--paper", "bulat2019", "--table", "1", "--db", "nosuchdb://x"], "database"),
    (["compare", "--paper", "nope"], "unknown paper 'nope'"),
    (["compare", "--format", "xml"], "invalid choice: 'xml'"),
    (["run", "--paper", "bulat2019"], "--table"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_leaves_db_untouched(workdir, capsys, argv, message):
    code, out, err = run_cli_safe(capsys, argv)
    assert code == 2
    assert err.startswith("repro: error:") and message in err and err.count("\n") == 1
    assert not (workdir / "results.db").exists()


def test_bad_input_leaves_existing_db_unchanged(smoke_table, capsys, monkeypatch):
    folder, _ = smoke_table
    monkeypatch.chdir(folder)
    before = digest(folder / "results.db")
    for argv, _ in BAD_INPUTS[:7]:
        code, _, _ = run_cli_safe(capsys, argv)
        assert code == 2
    assert digest(folder / "results.db") == before


def test_malformed_plugin_is_one_line(workdir, capsys, monkeypatch, tmp_path):
    package = tmp_path / "brokenpaper"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "paper.yaml").write_text("id: broken\ntitle: x\nyear: 2020\ntables: {'1': {caption: c, task: pose}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_PAPERS", None)
    original = plugins._plugin_modules
    monkeypatch.setattr(plugins, "_plugin_modules", lambda: original() + ["brokenpaper"])
    code, _, err = run_cli(capsys, "list")
    assert code == 2 and "malformed plugin" in err and "paper.yaml: tables.1.metrics: required field is missing" in err
    monkeypatch.setattr(plugins, "_PAPERS", None)


def run_cli_safe(capsys, argv):
    """argparse exits via SystemExit; the CLI's own errors return the code."""
    try:
        return run_cli(capsys, *argv)
    except SystemExit as exc:
        out, err = capsys.readouterr()
        return exc.code, out, err


def test_list_json_shows_rows_and_what_they_need(capsys):
    code, out, _ = run_cli(capsys, "list", "--format", "json")
    assert code == 0
    papers = {p["id"]: p for p in json.loads(out)}
    table = next(t for t in papers["bulat2019"]["tables"] if t["id"] == "1")
    assert len(table["rows"]) == 8 and table["dataset"] == "mpii"
    row = table["rows"][0]
    assert row["profiles"] == {"smoke": "synthetic_pose", "proxy": "synthetic_pose", "paper": "mpii",
                              "structure": "no data (measures the model)"}
    assert row["published"] == {"pckh_total": 76.6}
    # what the row's config assumes where the paper is silent, before anything runs
    assert "0.5" in table["assumptions"]["train.distill"] and "train.lr" in table["assumptions"]


def test_local_executor_runs_jobs_in_fresh_processes_and_shows_their_progress(workdir, capsys):
    """The default executor: each job is a new process that must find the plugins itself; two
    run at once here, each on one core, and every epoch shows as the job reports it. A teacher
    starts first and its student waits for it."""
    code, out, _ = run_cli(capsys, "run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline,prelu_rev_prog_distill",
                           "--profile", "smoke", "--jobs", "2")
    assert code == 0, out
    assert "local executor" in out and "done: 3 finished" in out
    lines = out.splitlines()
    started = [line for line in lines if line.startswith("started ")]
    assert "row real seed 0" in started[0] and "1 thread)" in started[0]  # the teacher first
    assert "row prelu_rev_prog_distill" in started[-1]
    finished_teacher = next(i for i, line in enumerate(lines) if "row real seed 0 (smoke): finished" in line)
    assert lines.index(started[-1]) > finished_teacher  # the student waited for its teacher
    assert any(line.startswith("  baseline seed 0: epoch 1/1: loss ") and "ETA" in line for line in lines)
    assert any(line.startswith("  prelu_rev_prog_distill seed 0: epoch 2/2 (stage weights 1/1)") for line in lines)
    assert not any("submitit" in line for line in lines)
    rows = sqlite3.connect(workdir / "results.db").execute("select status, executor, job_id from runs").fetchall()
    assert all(r[0] == "finished" and r[1] == "local" and r[2].isdigit() for r in rows) and len(rows) == 3
    assert not (workdir / ".repro" / "jobs" / "%j").exists()
    code, out, _ = run_cli(capsys, "run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline",
                           "--profile", "smoke", "--force", "--quiet")
    assert code == 0 and "epoch" not in out and "done: 1 finished" in out


def test_cli_choices_come_from_the_registries(capsys):
    from repro.registry import EXECUTORS

    @EXECUTORS.register("test_inline")
    def inline(folder):
        import submitit
        return submitit.DebugExecutor(folder=folder)

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "test_inline" in out and "structure" in out and "proxy 3" in out


def test_force_runs_a_finished_row_again(smoke_table, capsys, monkeypatch):
    folder, _ = smoke_table
    monkeypatch.chdir(folder)
    con = sqlite3.connect(folder / "results.db")
    before = con.execute("select finished_at from runs where row_id = 'real'").fetchone()[0]
    code, out, _ = run_cli(capsys, "run", "--paper", "bulat2019", "--table", "1", "--rows", "real",
                           "--profile", "smoke", "--executor", "debug", "--force")
    assert code == 0 and "done: 1 finished" in out
    after = con.execute("select finished_at, status from runs where row_id = 'real'").fetchone()
    assert after[0] != before and after[1] == "finished"
    assert con.execute("select count(*) from runs").fetchone()[0] == 8


def test_a_run_in_this_process_leaves_no_tracking_uri_for_the_next(workdir, capsys):
    """MLflow's set_tracking_uri writes MLFLOW_TRACKING_URI into the environment; left there, it would
    send a later run elsewhere (another folder, a dropped database) to this run's MLflow store."""
    import os

    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert main(["run", "--paper", "bulat2019", "--table", "1", "--rows", "baseline", "--profile", "smoke",
                 "--executor", "debug", "--quiet"]) == 0
    assert "MLFLOW_TRACKING_URI" not in os.environ and (workdir / "mlflow.db").exists()
