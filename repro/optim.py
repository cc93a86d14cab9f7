"""Optimizers (registered by name, ``train.optimizer``) and the learning-rate schedule."""
from __future__ import annotations

import torch

from .registry import OPTIMIZERS


@OPTIMIZERS.register("rmsprop")
def rmsprop(params, train: dict) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=train["lr"], weight_decay=train["weight_decay"])


@OPTIMIZERS.register("adam")
def adam(params, train: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=train["lr"], weight_decay=train["weight_decay"])


@OPTIMIZERS.register("sgd")
def sgd(params, train: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=train["lr"], momentum=train.get("momentum", 0.9), weight_decay=train["weight_decay"])


def make_optimizer(model: torch.nn.Module, train: dict) -> torch.optim.Optimizer:
    return OPTIMIZERS[train["optimizer"]](model.parameters(), train)


def clip_gradients(model: torch.nn.Module, limit: float) -> None:
    """``train.grad_clip``: every gradient element clamped to [-limit, limit] before the step (the
    value clipping of CPD's ``clip_gradient``, not a clip of the gradient's norm)."""
    for param in model.parameters():
        if param.grad is not None:
            param.grad.clamp_(-limit, limit)


def make_scheduler(optimizer: torch.optim.Optimizer, train: dict, epochs: int | None = None
                   ) -> torch.optim.lr_scheduler.LRScheduler:
    """lr times ``lr_drop_factor`` at each epoch of ``lr_drop_at`` (e.g. [150, 170, 200]) when
    given, else every ``lr_drop_every`` epochs. A stage shorter than ``train.epochs`` (``epochs``)
    runs the same schedule compressed to its length (drop epochs scaled, at least 1)."""
    ratio = 1.0 if epochs is None else epochs / train["epochs"]
    scaled = lambda e: max(1, round(e * ratio))  # noqa: E731
    if train.get("lr_drop_at"):
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [scaled(e) for e in train["lr_drop_at"]], train["lr_drop_factor"])
    return torch.optim.lr_scheduler.StepLR(optimizer, scaled(train["lr_drop_every"]), train["lr_drop_factor"])
