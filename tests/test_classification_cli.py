"""Classification tables end to end: smoke runs through the CLI and the structure profile."""
import json
import sqlite3

import pytest

from repro.cli import main
from repro.config import resolve
from repro.plugins import get_paper
from repro.tasks.classification import ClassificationTask

TASK = ClassificationTask()


@pytest.mark.parametrize("paper,table,rows", [
    ("bulat2019", "4", ["bnn_alexnet", "bnn_resnet18", "xnor_alexnet", "xnor_resnet18", "ours_alexnet",
                        "ours_resnet18", "real_alexnet", "real_resnet18"]),
    ("liu2020", "9", ["resnet56_cifar10", "resnet_lbb56_cifar10", "resnet56_cifar100", "resnet_lbb56_cifar100",
                      "resnet56_imagenet_sub", "resnet_lbb56_imagenet_sub"]),
])
def test_smoke_run_of_a_classification_table(workdir, capsys, monkeypatch, paper, table, rows):
    monkeypatch.setenv("REPRO_THREADS", "1")  # tiny networks: a second thread only spins
    code = main(["run", "--paper", paper, "--table", table, "--profile", "smoke", "--executor", "debug"])
    assert code == 0, capsys.readouterr()
    con = sqlite3.connect(workdir / "results.db")
    runs = con.execute("select row_id, status from runs").fetchall()
    assert sorted(r for r, _ in runs) == sorted(rows) and {s for _, s in runs} == {"finished"}
    metric = "top1_acc" if paper == "bulat2019" else "top1_err"
    finals = con.execute(f"select value from metrics where name='{metric}' and step is null").fetchall()
    assert len(finals) == len(rows) and all(0 <= v <= 100 for (v,) in finals)
    capsys.readouterr()
    assert main(["compare", "--paper", paper, "--table", table, "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert {c["row"] for c in cells if c["reproduced"] is not None} == set(rows)


def test_paper_profile_without_data_is_a_one_line_error(workdir, capsys):
    code = main(["run", "--paper", "liu2020", "--table", "9", "--rows", "resnet56_cifar10", "--profile", "paper",
                 "--executor", "debug"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("repro: error: cifar10 is not ready: data_batch_1") and len(err.strip().splitlines()) == 1


def test_structure_of_table9_against_the_published_counts(workdir, capsys):
    assert main(["run", "--paper", "liu2020", "--table", "9", "--rows", "resnet56_cifar10,resnet_lbb56_cifar10",
                 "--profile", "structure", "--executor", "debug"]) == 0
    capsys.readouterr()
    assert main(["compare", "--paper", "liu2020", "--table", "9", "--profile", "structure", "--format", "json"]) == 0
    cells = {(c["row"], c["metric"]): c for c in json.loads(capsys.readouterr().out)["cells"]}
    real, lbb = cells[("resnet56_cifar10", "params_m")], cells[("resnet_lbb56_cifar10", "params_m")]
    # Fig. 7 as described gives 0.582M / 0.292M trainable weights [computed]; the paper prints
    # 0.48M / 0.19M: the gap is reported, not hidden.
    assert abs(real["reproduced"] - 0.582) < 0.001 and real["published"] == 0.48 and real["delta_pct"] > 20
    assert abs(lbb["reproduced"] - 0.292) < 0.001 and lbb["published"] == 0.19
    assert cells[("resnet56_cifar10", "flops_g")]["reproduced"] > 0


@pytest.mark.parametrize("row,params_m,binary_m", [
    ("real_resnet18", 11.679, 0.0), ("xnor_resnet18", 11.679, 10.986),
    ("real_alexnet", 62.368, 0.0), ("xnor_alexnet", 62.368, 58.237),
])
def test_structure_of_table4_models_at_the_paper_size(row, params_m, binary_m):
    table = get_paper("bulat2019").table("4")
    measured = TASK.measure(resolve(table, table.row(row), "structure", 0).config)
    assert abs(measured["params_m"] - params_m) < 0.001
    assert abs(measured["params_binary_m"] - binary_m) < 0.001
    if binary_m:  # binary layers leave the real FLOPs to the first and last layers
        assert measured["binary_macs_g"] > 5 * measured["flops_g"] / 2
