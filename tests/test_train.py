"""The training loop: stages, progressive lambda, resuming, and divergence handling."""
import math
import sqlite3

import pytest
import torch

from repro.cli import main
from repro.config import resolve
from repro.nn.layers import QuantConv2d
from repro.nn.quantizers import SmoothSign
from repro.plugins import get_paper
from repro.tasks.pose import PoseTask
from repro.train import set_quantizers, stage_lambdas, stages, train_run


@pytest.fixture
def table():
    return get_paper("bulat2019").table("1")


def smoke_config(table, row, epochs=2):
    config = resolve(table, table.row(row), "smoke", 0).config
    config["train"]["epochs"] = epochs
    return config


def test_reverse_order_stage_one_keeps_weights_real(table):
    config = smoke_config(table, "prelu_rev")
    plan = stages(config)
    assert [s["name"] for s in plan] == ["features", "weights"]
    model = PoseTask().build_model(config)
    x = torch.randn(2, 3, 32, 32)
    set_quantizers(model, plan[0], math.inf, math.inf)
    binary_convs = [m for m in model.modules() if isinstance(m, QuantConv2d) and m.kernel_quantizer.binarizes]
    assert binary_convs and all(not m.kernel_quantizer.enabled and m.input_quantizer.enabled for m in binary_convs)
    conv = binary_convs[0]
    assert torch.equal(conv.kernel_quantizer(conv.weight), conv.weight)  # stage 1: real weights
    set_quantizers(model, plan[1], math.inf, math.inf)
    assert conv.kernel_quantizer.enabled and len(conv.kernel_quantizer(conv.weight).abs().flatten(1).unique(dim=1)[0]) <= 2
    assert len(model(x)) == 1


def test_progressive_lambda_rises_then_ends_in_sign(table):
    config = smoke_config(table, "prelu_rev_prog")
    start = stage_lambdas(config, 0, 0.0)
    middle = stage_lambdas(config, 0, 0.5)
    end = stage_lambdas(config, 0, 0.95)
    assert start[0] < middle[0] < end[0] == math.inf  # stage 1: activations become binary
    assert stage_lambdas(config, 1, 0.0)[0] == math.inf  # stage 2: activations stay binary...
    assert stage_lambdas(config, 1, 0.0)[1] < math.inf == stage_lambdas(config, 1, 0.95)[1]  # ...weights follow
    model = PoseTask().build_model(config)
    set_quantizers(model, stages(config)[0], 5.0, 7.0)
    lams = {(type(m).__name__, m.lam) for m in model.modules() if isinstance(m, SmoothSign)}
    assert ("SmoothSign", 5.0) in lams and ("SmoothSign", 7.0) in lams
    assert stage_lambdas(smoke_config(table, "prelu"), 0, 0.0) == (math.inf, math.inf)


def test_progressive_run_is_scored_as_a_binary_network(workdir, table, monkeypatch):
    """Even when the schedule never reaches hard_from, evaluation uses a true sign."""
    config = smoke_config(table, "prelu_rev_prog", epochs=2)
    config["train"]["progressive"]["hard_from"] = 1.0  # epoch 1 of each stage trains smooth
    lambdas_at_evaluation = []

    def spy(self, model, split, cfg):
        lambdas_at_evaluation.extend(m.lam for m in model.modules() if isinstance(m, SmoothSign))
        return {"pckh_total": 0.0}

    monkeypatch.setattr(PoseTask, "evaluate", spy)
    train_run(config, workdir / "run", lambda values, step: None)
    assert lambdas_at_evaluation and all(lam == math.inf for lam in lambdas_at_evaluation)


def test_interrupted_run_resumes_from_its_checkpoint(workdir, table):
    config = smoke_config(table, "prelu", epochs=3)
    seen = []

    def crash_in_second_epoch(values, step):
        seen.append(step)
        if step == 2:
            raise KeyboardInterrupt  # interrupted before epoch 2 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        train_run(config, workdir / "run", crash_in_second_epoch)
    assert (workdir / "run" / "checkpoint.pt").exists() and not (workdir / "run" / "model.pt").exists()
    final = train_run(config, workdir / "run", lambda values, step: seen.append(step))
    assert seen == [1, 2, 2, 3]  # epoch 1 is not trained again, epoch 2 is
    assert (workdir / "run" / "model.pt").exists() and 0 <= final["pckh_total"] <= 100


def test_diverged_run_is_stored_and_other_rows_go_on(workdir, capsys, monkeypatch):
    original = PoseTask.loss

    def nan_for_relu(self, outputs, targets, config, soft_targets=None):
        loss = original(self, outputs, targets, config, soft_targets)
        return loss * float("nan") if config["conv"]["post_activation"] == "relu" else loss

    monkeypatch.setattr(PoseTask, "loss", nan_for_relu)
    code = main(["run", "--paper", "bulat2019", "--table", "1", "--rows", "relu,lrelu", "--profile", "smoke", "--executor", "debug"])
    assert code == 1
    rows = dict(sqlite3.connect(workdir / "results.db").execute("select row_id, status || ':' || coalesce(error, '') from runs"))
    assert rows["relu"].startswith("diverged:loss became nan")
    assert rows["lrelu"] == "finished:"
    assert "diverged" in capsys.readouterr().out
