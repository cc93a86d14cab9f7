"""The training loop: one run of one table row, short enough to read in one sitting.

Techniques such as reverse-order initialization, progressive quantization and distillation are
recipes (repro/recipes.py) that the loop calls at fixed points; the loop itself knows none of
them. Every epoch is checkpointed (model, optimizer, scheduler, recipes, RNG states), and so is
the batch where the run stands when a stop is asked (``STOP``: a signal, a preemption, a time
limit), so an interrupted run resumes exactly where it stopped: the same final metrics, bit for
bit on the CPU, as a run that was never interrupted.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import optim
from .data import batch_count, batches
from .nn.quantizers import QUANTIZER_ROLES, set_quantizers_enabled
from .paths import CHECKPOINT, CONFIG_FILE, FINAL_MODEL
from .recipes import JOINT, Context, Stage, active
from .registry import RECIPES
from .tasks import get_task

# Set from another thread or a signal handler: the loop saves a checkpoint at the next batch
# boundary and raises Interrupted.
STOP = threading.Event()


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


class Interrupted(RuntimeError):
    """A stop was asked: the run saved a checkpoint where it stands and resumes from it."""


def train_run(config: dict, run_dir: Path, log: Callable[[dict, int], None],
              progress: Callable[[str], None] | None = None, threads: int | None = None) -> dict[str, float]:
    """Train and evaluate one run; returns the final metrics. ``log(values, step)`` records the
    curves (one step an epoch, counted across stages); ``progress`` gets one line an epoch."""
    task = get_task(config["task"])
    seed, train = config["run"]["seed"], config["train"]
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("REPRO_THREADS") or threads or os.cpu_count() or 1))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))

    train_split, val_split = task.load_data(config)
    # Channels-last convolutions are faster on CPUs (oneDNN) and GPUs alike; the values are the same up to rounding.
    memory_format, device = torch.channels_last, training_device()
    model = to_memory_format(task.build_model(config), memory_format).to(device)
    context = Context(task, config, run_dir.parent, memory_format, device)
    recipes = [RECIPES[name](options, context) for name, options in active(config)]
    plan = [JOINT]
    for recipe in recipes:
        recipe.prepare(model)
        plan = recipe.stages(plan)
    epochs = train["epochs"] if len(plan) == 1 else (train.get("stage_epochs") or train["epochs"])

    checkpoint_path = run_dir / CHECKPOINT
    resume = torch.load(checkpoint_path, weights_only=False, map_location=device) if checkpoint_path.exists() else None
    done = {"stage": 0, "epoch": 0, "batch": 0}  # where the run stands: the next batch to train
    if resume:
        model.load_state_dict(resume["model"])
        for recipe, state in zip(recipes, resume["recipes"]):
            recipe.load_state_dict(state)
        done = {"batch": 0, **resume["next"]}
        _set_rng_states(resume["rng"])
        if progress:
            progress(f"resuming from its checkpoint at stage {plan[min(done['stage'], len(plan) - 1)].name}, "
                     f"epoch {done['epoch'] + 1}, batch {done['batch'] + 1}")

    step = done["stage"] * epochs + done["epoch"]  # epochs across stages, for the curves
    total_steps, seconds = len(plan) * epochs, []
    metrics: dict[str, float] = resume["metrics"] if resume else {}
    per_epoch = batch_count(len(train_split), train["batch_size"], train=True)
    for stage_index in range(done["stage"], len(plan)):
        stage = plan[stage_index]
        apply_stage(model, stage)
        optimizer = optim.make_optimizer(model, train)
        scheduler = optim.make_scheduler(optimizer, train, epochs)
        here = stage_index == done["stage"]
        if resume and here and (done["epoch"] or done["batch"]):
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
        for recipe in recipes:
            recipe.stage_begin(model, stage, stage_index)
        for epoch in range(done["epoch"] if here else 0, epochs):
            mid_epoch = here and epoch == done["epoch"] and done["batch"] > 0
            first_batch = done["batch"] if mid_epoch else 0
            total, count = (resume["loss_total"], resume["loss_batches"]) if mid_epoch else (0.0, 0)
            started = time.perf_counter() - (resume["epoch_seconds"] if mid_epoch else 0.0)
            for recipe in recipes:  # on a resumed epoch too: a recipe sets its state here, never accumulates
                recipe.epoch_begin(model, stage, epoch, epochs)
            model.train()
            epoch_seed = seed * 1_000_003 + stage_index * 1_000 + epoch  # the epoch's order and augmentation

            trained = first_batch  # batches of this epoch done
            for index, (inputs, targets) in enumerate(_until_stopped(batches(task, train_split, config, epoch_seed, True,
                                                                             first_batch)), start=first_batch):
                inputs, targets = to_device(inputs, device), to_device(targets, device)
                if inputs.dim() == 4:
                    inputs = inputs.contiguous(memory_format=memory_format)
                outputs = model(inputs)
                loss = task.loss(outputs, targets, config)
                for recipe in recipes:
                    loss = recipe.loss(loss, inputs, outputs)
                if not torch.isfinite(loss):
                    raise Diverged(f"loss became {loss.item()} in stage '{stage.name}', epoch {epoch + 1}, batch {index + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train.get("grad_clip"):
                    optim.clip_gradients(model, train["grad_clip"])
                optimizer.step()
                total, count, trained = total + loss.item(), count + 1, index + 1
                if STOP.is_set():
                    break
            if trained < per_epoch:  # stopped mid-epoch: save where the run stands
                _save_atomic(_state(model, optimizer, scheduler, recipes, metrics, stage_index, epoch, trained, loss_total=total,
                                    loss_batches=count, epoch_seconds=time.perf_counter() - started), checkpoint_path)
                raise Interrupted(f"stopped in stage '{stage.name}', epoch {epoch + 1}, after batch {trained}: checkpoint saved")
            scheduler.step()
            for recipe in recipes:
                recipe.epoch_end(model, stage, epoch, epochs)
            metrics = task.evaluate(model, val_split, config)
            metrics["train_loss"] = total / max(count, 1)
            metrics["epoch_seconds"] = time.perf_counter() - started
            step += 1
            log(metrics, step)
            last = epoch + 1 == epochs
            _save_atomic(_state(model, optimizer, scheduler, recipes, metrics,
                                stage_index + last, 0 if last else epoch + 1, 0), checkpoint_path)
            if progress:
                seconds.append(metrics["epoch_seconds"])
                progress(_progress_line(task, step, total_steps, stage, epoch, epochs, len(plan), metrics, seconds))
            if STOP.is_set() and step < total_steps:
                raise Interrupted(f"stopped after epoch {epoch + 1} of stage '{stage.name}': checkpoint saved")
        for recipe in recipes:
            recipe.stage_end(model, stage, stage_index)
    _save_atomic(model.state_dict(), run_dir / FINAL_MODEL)
    return {k: v for k, v in metrics.items() if k != "epoch_seconds"}


def _until_stopped(stream):
    """The epoch's batches; they end early where the stop's signal (SLURM sends it to every process)
    killed a data worker before this process saw the stop."""
    try:
        yield from stream
    except RuntimeError:
        if not STOP.is_set():
            raise


def training_device() -> torch.device:
    """A GPU where there is one (``REPRO_DEVICE`` chooses: cpu, cuda, cuda:1, ...)."""
    name = os.environ.get("REPRO_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        from .errors import ReproError
        raise ReproError(f"REPRO_DEVICE: unknown device '{name}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        from .errors import ReproError
        raise ReproError("REPRO_DEVICE asks for cuda, but torch sees no GPU here: unset it or use REPRO_DEVICE=cpu")
    return device


def to_device(value, device: torch.device):
    """A batch's tensors (alone, or in a dict, list or tuple) on ``device``; the same objects on the CPU."""
    if device.type == "cpu":
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    return value


def _state(model, optimizer, scheduler, recipes, metrics: dict, stage: int, epoch: int, batch: int, **partial) -> dict:
    """Everything a resumed run needs to continue as if it had not stopped."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "metrics": metrics, "recipes": [recipe.state_dict() for recipe in recipes], "rng": _rng_states(),
            "next": {"stage": stage, "epoch": epoch, "batch": batch}, **partial}


def _rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def to_memory_format(module: torch.nn.Module, memory_format: torch.memory_format) -> torch.nn.Module:
    """The module's 4-d parameters and buffers (conv weights) in ``memory_format``, in place;
    tensors of other ranks (a decomposition's factors) stay as they are."""
    return module._apply(lambda t: t.contiguous(memory_format=memory_format) if t.dim() == 4 else t)


def apply_stage(model: torch.nn.Module, stage: Stage) -> None:
    """Switch each quantizer role on or off as the stage says."""
    for role in QUANTIZER_ROLES:
        set_quantizers_enabled(model, role, role in stage.quantized)


def _progress_line(task, step: int, total: int, stage, epoch: int, epochs: int, stages: int, metrics: dict,
                   seconds: list[float]) -> str:
    """``epoch 3/16 (stage features 3/8): loss 0.0123, pckh_total 23.4; 4.1 s/epoch, ETA 0:53``."""
    where = f" (stage {stage.name} {epoch + 1}/{epochs})" if stages > 1 else ""
    shown = [f"loss {metrics['train_loss']:.4g}"]
    shown += [f"{name} {metrics[name]:.3g}" for name in task.metrics[:1] if name in metrics]
    per_epoch = sum(seconds) / len(seconds)
    eta = int(round(per_epoch * (total - step)))
    return (f"epoch {step}/{total}{where}: {', '.join(shown)}; {per_epoch:.1f} s/epoch, "
            f"ETA {eta // 60}:{eta % 60:02d}")


def measure_run(config: dict) -> dict[str, float]:
    """The ``structure`` profile: build the row's model at the paper's input size and measure it."""
    torch.manual_seed(config["run"]["seed"])
    return get_task(config["task"]).measure(config)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
