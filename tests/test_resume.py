"""Exact resume: a run stopped mid-epoch (a signal, a preemption, a time limit) and resumed from
its checkpoint ends with the same final metrics and weights, bit for bit on the CPU, as the same
config and seed run without interruption; through the CLI and its job, Ctrl-C stops it cleanly."""
import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from repro import train
from repro.config import resolve
from repro.plugins import get_paper
from repro.tasks.pose import PoseTask
from repro.train import Interrupted, train_run


def config_of(row: str, epochs: int = 3) -> dict:
    table = get_paper("bulat2019").table("1")
    config = copy.deepcopy(resolve(table, table.row(row), "smoke", 0).config)
    config["train"]["epochs"] = epochs
    config["data"]["n_train"] = 96  # 6 batches an epoch
    return config


def stop_after(monkeypatch, calls: int) -> None:
    """Ask the loop to stop once the task's loss has been computed ``calls`` times."""
    original, count = PoseTask.loss, {"n": 0}

    def loss(self, outputs, targets, config):
        count["n"] += 1
        if count["n"] == calls:
            train.STOP.set()
        return original(self, outputs, targets, config)

    monkeypatch.setattr(PoseTask, "loss", loss)


# 6 batches an epoch: a stop after batch 6 comes at an epoch's end (as a kill -9 right after the
# epoch's checkpoint), the others mid-epoch.
@pytest.mark.parametrize("row, stops", [("prelu", [6, 8]), ("prelu_rev_prog", [3, 9, 14])])
def test_a_run_stopped_mid_epoch_resumes_to_the_same_result(workdir, row, stops):
    config = config_of(row)
    curves = {}
    reference = train_run(config, workdir / "straight", lambda values, step: curves.setdefault("straight", []).append(values))
    straight = torch.load(workdir / "straight" / "model.pt", weights_only=True)
    resumed_curve, trained = [], 0
    for calls in stops:  # stopped again and again, each time somewhere else
        train.STOP.clear()
        with pytest.MonkeyPatch.context() as patch:  # undone alone: the workdir's settings (threads) stay
            stop_after(patch, calls)
            with pytest.raises(Interrupted, match="checkpoint saved"):
                train_run(config, workdir / "stopped", lambda values, step: resumed_curve.append(values))
        trained += calls  # batches trained so far: 6 an epoch, 3 epochs a stage
        saved = torch.load(workdir / "stopped" / "checkpoint.pt", weights_only=False)
        assert saved["next"] == {"stage": trained // 18, "epoch": trained % 18 // 6, "batch": trained % 6}  # where it stood
    train.STOP.clear()
    final = train_run(config, workdir / "stopped", lambda values, step: resumed_curve.append(values))
    assert final == {k: v for k, v in reference.items()}  # bit for bit
    resumed = torch.load(workdir / "stopped" / "model.pt", weights_only=True)
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    last = {k: v for k, v in resumed_curve[-1].items() if k != "epoch_seconds"}
    assert last == {k: v for k, v in curves["straight"][-1].items() if k != "epoch_seconds"}


def test_a_job_stopped_by_ctrl_c_saves_and_resumes(tmp_path):
    """Through the CLI and a local job, as a user's terminal does: Ctrl-C (SIGINT to the CLI's
    whole process group, submitit's controller included) stops the job at its next batch, with no
    traceback from any process and none left training; the run is recorded interrupted with a
    mid-epoch checkpoint, and the next `repro run` resumes and says so."""
    env = {**os.environ, "REPRO_THREADS": "1"}
    for var in ("REPRO_DB", "REPRO_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    command = [sys.executable, "-m", "repro.cli", "run", "--paper", "bulat2019", "--table", "1", "--rows", "real",
               "--profile", "proxy", "--seeds", "1"]
    # As from a terminal: Ctrl-C's default action, even where this suite was started in the background
    # (a shell without job control starts background commands with SIGINT ignored, and children inherit that).
    cli = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in cli.stdout:  # wait until the job trains its second epoch
        lines.append(line)
        if "epoch 1/8" in line:
            break
    time.sleep(2.0)
    os.killpg(cli.pid, signal.SIGINT)
    out = cli.communicate(timeout=120)[0]
    assert cli.returncode == 130, "".join(lines) + out
    assert "Traceback" not in out and "interrupted" in out, out
    db = sqlite3.connect(tmp_path / "results.db")
    status, job_id, error = db.execute("select status, job_id, error from runs").fetchone()
    assert status == "interrupted" and "checkpoint saved" in error
    time.sleep(1.0)
    assert subprocess.run(["ps", "-p", job_id], capture_output=True).returncode != 0  # the job process is gone
    folder = next((tmp_path / ".repro" / "runs").iterdir())
    saved = torch.load(folder / "checkpoint.pt", weights_only=False)
    assert saved["next"]["epoch"] >= 1 and saved["next"]["batch"] > 0  # mid-epoch
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resuming from its checkpoint" in again.stdout and "done: 1 finished" in again.stdout
    status, attempts, duration = db.execute("select status, attempts, duration_s from runs").fetchone()
    assert status == "finished" and attempts == 2 and duration > 0
    metrics = json.loads(json.dumps(dict(db.execute("select name, value from metrics where step is null").fetchall())))
    assert 0 <= metrics["pckh_total"] <= 100
