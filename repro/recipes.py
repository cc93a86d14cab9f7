"""Training recipes: techniques a config switches on by name, ``train.<name>: options``.

A recipe plugs into the training loop (repro/train.py) through hooks: it may change the model
once it is built (``prepare``), the list of training stages (``stages``), act at the begin and
end of each stage and epoch, change the loss, and it has a ``state_dict`` saved in every
checkpoint, so a resumed run continues exactly. It may also depend on other runs of the same
table (``dependencies``: a distillation teacher), which the runner trains first.

The three below come from Bulat et al. 2019 and are used by other BNN methods too; a plugin
registers its own in ``repro.registry.RECIPES`` the same way.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ReproError
from .nn.quantizers import QUANTIZER_ROLES, SMOOTH_SIGNS, SmoothSign, lambda_schedule, smooth_quantizers
from .paths import CONFIG_FILE, FINAL_MODEL
from .registry import QUANTIZERS, RECIPES


@dataclass(frozen=True)
class Stage:
    """One training stage: which quantizer roles are on, and which of them start in it."""
    name: str
    quantized: frozenset[str] = frozenset(QUANTIZER_ROLES)
    new: frozenset[str] = frozenset(QUANTIZER_ROLES)


JOINT = Stage("joint")  # a single stage with every quantizer on: the plain recipe


@dataclass
class Context:
    """What a recipe may use: the row's task and config, and the runs folder (other runs' files)."""
    task: Any
    config: dict
    runs_root: Path
    memory_format: torch.memory_format = torch.contiguous_format  # the model's, for modules a recipe adds
    device: torch.device = torch.device("cpu")  # the model's


class Recipe:
    """Base class: every hook does nothing."""

    def __init__(self, options: Any, context: Context):
        self.options, self.context = options, context

    @classmethod
    def check(cls, options: Any, config: dict) -> None:
        """Raise ReproError for bad options, before anything is stored."""

    @classmethod
    def dependencies(cls, options: Any, resolve_row: Callable[[str, int], Any]) -> list:
        """Runs (RunConfigs, from ``resolve_row(row_id, seed)``) this one needs finished first.
        May record what it needs of them in ``options`` (it is part of the run's config hash)."""
        return []

    def prepare(self, model: torch.nn.Module) -> None:
        """Change the model once it is built, before any checkpoint is loaded into it."""

    def stages(self, stages: list[Stage]) -> list[Stage]:
        return stages

    def stage_begin(self, model: torch.nn.Module, stage: Stage, index: int) -> None:
        pass

    def stage_end(self, model: torch.nn.Module, stage: Stage, index: int) -> None:
        pass

    def epoch_begin(self, model: torch.nn.Module, stage: Stage, epoch: int, epochs: int) -> None:
        pass

    def epoch_end(self, model: torch.nn.Module, stage: Stage, epoch: int, epochs: int) -> None:
        """Called before the epoch's evaluation."""

    def loss(self, loss: torch.Tensor, inputs: torch.Tensor, outputs: Any) -> torch.Tensor:
        """The batch's loss, with this recipe's terms."""
        return loss

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def active(config: dict) -> list[tuple[str, Any]]:
    """(name, options) of the recipes a config switches on, in registry order."""
    train = config["train"]
    return [(name, train[name]) for name in RECIPES.names() if train.get(name)]


@RECIPES.register("reverse_init")
class ReverseOrderInit(Recipe):
    """Bulat et al. 2019 sec. 3.3: stage ``features`` trains binary activations with real
    weights, stage ``weights`` then binarizes the weights too, starting from stage 1."""

    @classmethod
    def check(cls, options: Any, config: dict) -> None:
        if options is not True:
            raise ReproError(f"train.reverse_init: expected true or false, got {options!r}")
        if not config["conv"]["binary"]:
            raise ReproError("train.reverse_init needs a binary network (conv.binary: true)")

    def stages(self, stages: list[Stage]) -> list[Stage]:
        return [Stage("features", frozenset({"input"}), frozenset({"input"})),
                Stage("weights", frozenset(QUANTIZER_ROLES), frozenset({"kernel"}))]


@RECIPES.register("progressive")
class ProgressiveQuantization(Recipe):
    """Bulat et al. 2019 sec. 3.4: each quantizer is replaced by its smooth counterpart
    f(lambda x) (:meth:`Quantizer.smooth`), lambda raised on a schedule within each stage
    (:func:`lambda_schedule`) and ending in a true sign. A quantizer that was already binary in
    an earlier stage stays a true sign. The network is always scored binary (lambda = inf)."""

    @classmethod
    def check(cls, options: Any, config: dict) -> None:
        if not isinstance(options, dict):
            raise ReproError(f"train.progressive: expected a mapping (kind, lambda_start, lambda_end, hard_from), got {options!r}")
        kind = options.get("kind", "sigmoid")
        if kind not in SMOOTH_SIGNS:
            raise ReproError(f"train.progressive.kind: unknown value '{kind}': choose from {', '.join(SMOOTH_SIGNS)}")
        try:
            lambda_schedule(0.5, options.get("lambda_start", 1.0), options.get("lambda_end", 100.0), options.get("hard_from", 0.9))
            for key in ("input_quantizer", "kernel_quantizer"):
                QUANTIZERS.build(config["conv"][key]).smooth(kind)
        except ValueError as exc:
            raise ReproError(f"train.progressive: {exc}") from None

    def prepare(self, model: torch.nn.Module) -> None:
        smooth_quantizers(model, self.options.get("kind", "sigmoid"))

    def epoch_begin(self, model: torch.nn.Module, stage: Stage, epoch: int, epochs: int) -> None:
        # Lambda for this epoch, reached at its end: the last epochs run a true sign.
        lam = lambda_schedule((epoch + 1) / epochs, self.options.get("lambda_start", 1.0),
                              self.options.get("lambda_end", 100.0), self.options.get("hard_from", 0.9))
        for role in QUANTIZER_ROLES:
            set_lambda(model, role, lam if role in stage.new else math.inf)

    def epoch_end(self, model: torch.nn.Module, stage: Stage, epoch: int, epochs: int) -> None:
        for role in QUANTIZER_ROLES:  # score the binary network, never its smooth proxy
            set_lambda(model, role, math.inf)


def set_lambda(model: torch.nn.Module, role: str, lam: float) -> None:
    """Lambda of every smooth sign inside the ``role`` quantizers of the model's layers."""
    for module in model.modules():
        quantizer = getattr(module, f"{role}_quantizer", None)
        if quantizer is not None:
            for smooth in quantizer.modules():
                if isinstance(smooth, SmoothSign):
                    smooth.lam = lam


@RECIPES.register("distill")
class Distillation(Recipe):
    """Bulat et al. 2019 sec. 3.6: a trained teacher (another row of the same table, trained once
    with ``teacher_seed``, default 0) gives soft labels; the loss becomes
    ``(1 - weight) * loss + weight * task.distill_loss(outputs, teacher's soft labels)``."""

    @classmethod
    def check(cls, options: Any, config: dict) -> None:
        if not isinstance(options, dict) or "teacher" not in options:
            raise ReproError(f"train.distill: expected a mapping with teacher (a row id) and weight, got {options!r}")
        weight = options.get("weight", 0.5)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ReproError(f"train.distill.weight must be a number in [0, 1], got {weight!r}")

    @classmethod
    def dependencies(cls, options: Any, resolve_row: Callable[[str, int], Any]) -> list:
        teacher = resolve_row(options["teacher"], options.get("teacher_seed", 0))
        if teacher.config["train"].get("distill"):
            raise ReproError(f"the teacher row '{options['teacher']}' itself distills: chains are not supported")
        # The teacher's hash is part of the student's config: a changed teacher means a new student run.
        options["teacher_hash"] = teacher.hash
        return [teacher]

    def __init__(self, options: Any, context: Context):
        super().__init__(options, context)
        folder = context.runs_root / options["teacher_hash"]
        teacher_config = json.loads((folder / CONFIG_FILE).read_text())
        teacher = context.task.build_model(teacher_config)
        teacher.load_state_dict(torch.load(folder / FINAL_MODEL, weights_only=True, map_location="cpu"))
        from .train import to_memory_format
        self.teacher = to_memory_format(teacher, context.memory_format).to(context.device).eval().requires_grad_(False)
        self.weight = float(options.get("weight", 0.5))

    def loss(self, loss: torch.Tensor, inputs: torch.Tensor, outputs: Any) -> torch.Tensor:
        with torch.no_grad():
            soft = self.context.task.distill_targets(self.teacher(inputs))
        return (1 - self.weight) * loss + self.weight * self.context.task.distill_loss(outputs, soft, self.context.config)

    def state_dict(self) -> dict:
        return {"teacher_hash": self.options["teacher_hash"]}
