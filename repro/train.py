"""The training loop: one run of one table row, short enough to read in one sitting.

Stages implement reverse-order initialization (Bulat 2019 sec. 3.3): stage ``features`` trains
binary activations with real weights, stage ``weights`` then binarizes the weights too, starting
from stage 1. Progressive quantization (sec. 3.4) raises lambda of the smooth sign on a schedule
within each stage and ends in a true sign. Distillation (sec. 3.6) adds a teacher's heatmaps as
soft labels. Every epoch is checkpointed, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch

from .nn.layers import QuantConv2d
from .nn.quantizers import SmoothSign, lambda_schedule, set_quantizers_enabled
from .tasks import get_task

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "model.pt"


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def stages(config: dict) -> list[dict]:
    """The training stages as (name, which quantizers are on)."""
    if config["conv"]["binary"] and config["train"]["reverse_init"]:
        return [{"name": "features", "activations": True, "weights": False},
                {"name": "weights", "activations": True, "weights": True}]
    return [{"name": "joint", "activations": True, "weights": True}]


def set_quantizers(model: torch.nn.Module, stage: dict, lam_input: float, lam_kernel: float) -> None:
    """Switch each role's quantizers on or off and set the smooth-sign lambda per role."""
    set_quantizers_enabled(model, "input", stage["activations"])
    set_quantizers_enabled(model, "kernel", stage["weights"])
    for module in model.modules():
        if isinstance(module, QuantConv2d):
            for quantizer, lam in ((module.input_quantizer, lam_input), (module.kernel_quantizer, lam_kernel)):
                for smooth in quantizer.modules():
                    if isinstance(smooth, SmoothSign):
                        smooth.lam = lam


def stage_lambdas(config: dict, stage_index: int, fraction: float) -> tuple[float, float]:
    """Lambda of the smooth sign for (inputs, kernels) at a point of a stage; inf is a true sign.

    With reverse-order initialization the activations are made binary progressively in stage 1
    and stay binary in stage 2, where the weights in turn are binarized progressively.
    """
    progressive = config["train"]["progressive"]
    if not progressive:
        return math.inf, math.inf
    lam = lambda_schedule(fraction, progressive["lambda_start"], progressive["lambda_end"], progressive["hard_from"])
    if len(stages(config)) == 2 and stage_index == 1:
        return math.inf, lam
    return lam, lam


def make_optimizer(model: torch.nn.Module, train: dict) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), train["lr"], train["weight_decay"]
    if train["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=train.get("momentum", 0.9), weight_decay=wd)


def make_scheduler(optimizer: torch.optim.Optimizer, train: dict) -> torch.optim.lr_scheduler.LRScheduler:
    """lr times ``lr_drop_factor`` at each epoch of ``lr_drop_at`` (e.g. [150, 170, 200]) when
    given, else every ``lr_drop_every`` epochs."""
    if train.get("lr_drop_at"):
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, train["lr_drop_at"], train["lr_drop_factor"])
    return torch.optim.lr_scheduler.StepLR(optimizer, train["lr_drop_every"], train["lr_drop_factor"])


def load_teacher(task, config: dict, runs_root: Path) -> torch.nn.Module:
    teacher_dir = runs_root / config["train"]["distill"]["teacher_hash"]
    teacher_config = json.loads((teacher_dir / "config.json").read_text())
    teacher = task.build_model(teacher_config)
    teacher.load_state_dict(torch.load(teacher_dir / FINAL_MODEL, weights_only=True))
    return teacher.eval().requires_grad_(False)


def train_run(config: dict, run_dir: Path, log_metrics: Callable[[dict, int], None]) -> dict[str, float]:
    """Train and evaluate one run; returns the final metrics. ``log_metrics(values, epoch)`` records curves."""
    task = get_task(config["task"])
    seed = config["run"]["seed"]
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("REPRO_THREADS", os.cpu_count() or 1)))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    train_split, val_split = task.load_data(config)
    model = task.build_model(config)
    teacher = load_teacher(task, config, run_dir.parent) if config["train"]["distill"] else None
    train = config["train"]
    plan = stages(config)

    done = {"stage": 0, "epoch": 0}  # the next (stage, epoch) to run
    checkpoint_path = run_dir / CHECKPOINT
    resume = torch.load(checkpoint_path, weights_only=False) if checkpoint_path.exists() else None
    if resume:
        model.load_state_dict(resume["model"])
        done = resume["next"]

    step = done["stage"] * train["epochs"] + done["epoch"]  # epochs across stages, for the curves
    metrics: dict[str, float] = resume["metrics"] if resume else {}
    for stage_index in range(done["stage"], len(plan)):
        stage = plan[stage_index]
        optimizer = make_optimizer(model, train)
        scheduler = make_scheduler(optimizer, train)
        first_epoch = done["epoch"] if stage_index == done["stage"] else 0
        if resume and stage_index == done["stage"] and first_epoch > 0:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
        for epoch in range(first_epoch, train["epochs"]):
            started = time.perf_counter()
            # Lambda for this epoch, reached at its end: the last epochs run a true sign.
            set_quantizers(model, stage, *stage_lambdas(config, stage_index, (epoch + 1) / train["epochs"]))
            model.train()
            generator = torch.Generator().manual_seed(seed * 1_000_003 + stage_index * 1_000 + epoch)  # resumable order
            total, batches = 0.0, 0
            for images, targets in task.batches(train_split, config, generator):
                outputs = model(images)
                soft = task.soft_targets(teacher(images)) if teacher is not None else None
                loss = task.loss(outputs, targets, config, soft)
                if not torch.isfinite(loss):
                    raise Diverged(f"loss became {loss.item()} in stage '{stage['name']}', epoch {epoch + 1}, batch {batches + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            scheduler.step()
            set_quantizers(model, stage, math.inf, math.inf)  # score the binary network, never its smooth proxy
            metrics = task.evaluate(model, val_split, config)
            metrics["train_loss"] = total / max(batches, 1)
            metrics["epoch_seconds"] = time.perf_counter() - started
            step += 1
            log_metrics(metrics, step)
            _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "metrics": metrics,
                          "next": {"stage": stage_index, "epoch": epoch + 1} if epoch + 1 < train["epochs"]
                          else {"stage": stage_index + 1, "epoch": 0}}, checkpoint_path)
    _save_atomic(model.state_dict(), run_dir / FINAL_MODEL)
    return {k: v for k, v in metrics.items() if k != "epoch_seconds"}


def measure_run(config: dict) -> dict[str, float]:
    """The ``structure`` profile: build the row's model at the paper's input size and measure it."""
    torch.manual_seed(config["run"]["seed"])
    return get_task(config["task"]).measure(config)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
