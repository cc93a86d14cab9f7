"""The Task protocol: what every task (pose, face alignment, classification, a plugin's own)
provides to the core. A task is registered by name (``@TASKS.register("pose")`` on its class)
and a table says which task it belongs to; the core builds, trains and scores a row only
through these members.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch


class Task(Protocol):
    name: str
    #: Metrics ``evaluate`` returns (the names a table's ``metrics`` may use).
    metrics: tuple[str, ...]
    #: The paper-scale config every row of the task starts from (tables override what they state).
    defaults: dict[str, Any]
    #: Config overlays of the ``smoke`` and ``proxy`` profiles (repro.profiles), by profile name.
    profiles: dict[str, dict[str, Any]]
    #: Conventions the task assumes, by config key (shown by ``compare`` where the key is in use).
    assumptions: dict[str, str]
    #: Assumptions a profile's overlay adds, by profile name, then config key.
    profile_assumptions: dict[str, dict[str, str]]

    def finalize(self, config: dict) -> None:
        """Check the resolved config (names against the registries, sizes) and derive values
        (e.g. the heatmap size), in place, before anything is stored. Raises ReproError."""

    def check_data(self, config: dict) -> None:
        """Raise ReproError naming where to put the dataset when it is missing."""

    def load_data(self, config: dict) -> tuple[Any, Any]:
        """(train split, validation split) of ``config["data"]``."""

    def batch(self, split: Any, idx: torch.Tensor, config: dict, generator: torch.Generator | None,
              train: bool = True) -> tuple[torch.Tensor, Any]:
        """(inputs, targets) of the examples ``idx`` of a split (which has ``len``); a training
        batch augmented by ``generator``. The core draws the order and the generators
        (repro/data.py), so any batch of an epoch can be rebuilt alone when a run resumes."""

    def build_model(self, config: dict) -> torch.nn.Module:
        """The row's network (ConvSpec units, registered model, re-parametrization)."""

    def loss(self, outputs: Any, targets: Any, config: dict) -> torch.Tensor:
        """The training loss against the ground truth."""

    def distill_targets(self, teacher_outputs: Any) -> torch.Tensor:
        """A teacher's outputs as soft labels (probabilities) for :meth:`distill_loss`."""

    def distill_loss(self, outputs: Any, soft_targets: torch.Tensor, config: dict) -> torch.Tensor:
        """The training loss against a teacher's soft labels (the distillation recipe weighs it)."""

    def evaluate(self, model: torch.nn.Module, split: Any, config: dict) -> dict[str, float]:
        """The task's metrics on a split, as the benchmark's official evaluation computes them."""

    def measure(self, config: dict) -> dict[str, float]:
        """The ``structure`` profile: the model's counts and sizes at the paper's input size."""
