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
from repro.recipes import JOINT, Context, ProgressiveQuantization, ReverseOrderInit
from repro.tasks.pose import PoseTask
from repro.train import apply_stage, train_run


@pytest.fixture
def table():
    return get_paper("bulat2019").table("1")


def smoke_config(table, row, epochs=2):
    config = resolve(table, table.row(row), "smoke", 0).config
    config["train"]["epochs"] = epochs
    return config


def test_reverse_order_stage_one_keeps_weights_real(table):
    config = smoke_config(table, "prelu_rev")
    plan = ReverseOrderInit(True, None).stages([JOINT])
    assert [s.name for s in plan] == ["features", "weights"]
    model = PoseTask().build_model(config)
    x = torch.randn(2, 3, 32, 32)
    apply_stage(model, plan[0])
    binary_convs = [m for m in model.modules() if isinstance(m, QuantConv2d) and m.kernel_quantizer.binarizes]
    assert binary_convs and all(not m.kernel_quantizer.enabled and m.input_quantizer.enabled for m in binary_convs)
    conv = binary_convs[0]
    assert torch.equal(conv.kernel_quantizer(conv.weight), conv.weight)  # stage 1: real weights
    apply_stage(model, plan[1])
    assert conv.kernel_quantizer.enabled and len(conv.kernel_quantizer(conv.weight).abs().flatten(1).unique(dim=1)[0]) <= 2
    assert len(model(x)) == 1


def lambdas(model, role):
    return {m.lam for module in model.modules() for m in getattr(module, f"{role}_quantizer", torch.nn.Identity()).modules()
            if isinstance(m, SmoothSign)}


def test_progressive_lambda_rises_then_ends_in_sign(table, tmp_path):
    config = smoke_config(table, "prelu_rev_prog")
    model = PoseTask().build_model(config)
    recipe = ProgressiveQuantization(config["train"]["progressive"], Context(PoseTask(), config, tmp_path))
    recipe.prepare(model)  # every quantizer becomes its smooth counterpart
    assert lambdas(model, "input") == lambdas(model, "kernel") == {1.0}
    features, weights = ReverseOrderInit(True, None).stages([JOINT])
    seen = []
    for epoch in range(10):
        recipe.epoch_begin(model, features, epoch, 10)
        seen.append(lambdas(model, "input").pop())
        assert lambdas(model, "kernel") == {math.inf}  # not quantized yet in stage 1
    assert seen[0] < seen[4] < seen[8] and seen[-1] == math.inf  # stage 1: activations become binary
    recipe.epoch_begin(model, weights, 0, 10)
    assert lambdas(model, "input") == {math.inf} and lambdas(model, "kernel").pop() < math.inf  # stage 2: weights follow
    recipe.epoch_end(model, weights, 0, 10)
    assert lambdas(model, "input") == lambdas(model, "kernel") == {math.inf}  # scored binary


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

    def nan_for_relu(self, outputs, targets, config):
        loss = original(self, outputs, targets, config)
        return loss * float("nan") if config["conv"]["post_activation"] == "relu" else loss

    monkeypatch.setattr(PoseTask, "loss", nan_for_relu)
    code = main(["run", "--paper", "bulat2019", "--table", "1", "--rows", "relu,lrelu", "--profile", "smoke", "--executor", "debug"])
    assert code == 1
    rows = dict(sqlite3.connect(workdir / "results.db").execute("select row_id, status || ':' || coalesce(error, '') from runs"))
    assert rows["relu"].startswith("diverged:loss became nan")
    assert rows["lrelu"] == "finished:"
    assert "diverged" in capsys.readouterr().out


def test_device_choice_and_its_errors(monkeypatch):
    from repro.errors import ReproError
    from repro.train import to_device, training_device

    monkeypatch.setenv("REPRO_DEVICE", "cpu")
    assert training_device().type == "cpu"
    batch = {"heatmaps": torch.ones(2), "keypoints": [torch.zeros(1)]}
    assert to_device(batch, torch.device("cpu")) is batch  # nothing copied on the CPU
    monkeypatch.setenv("REPRO_DEVICE", "tpu9")
    with pytest.raises(ReproError, match="REPRO_DEVICE: unknown device 'tpu9'"):
        training_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("REPRO_DEVICE", "cuda")
        with pytest.raises(ReproError, match="torch sees no GPU here"):
            training_device()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here): the GPU training path is not exercised")
def test_a_smoke_run_trains_on_the_gpu_and_its_model_loads_on_the_cpu(table, tmp_path, monkeypatch):
    from repro.paths import FINAL_MODEL

    monkeypatch.delenv("REPRO_DEVICE", raising=False)
    config = smoke_config(table, "prelu", epochs=1)
    metrics = train_run(config, tmp_path / "run", log=lambda values, step: None)
    assert math.isfinite(metrics["pckh_total"])
    state = torch.load(tmp_path / "run" / FINAL_MODEL, weights_only=True, map_location="cpu")
    PoseTask().build_model(config).load_state_dict(state)
