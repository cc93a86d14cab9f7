"""What every task shares: name checks against the registries, and building the network of a
config (ConvSpec -> registered model -> optional re-parametrization)."""
from __future__ import annotations

import torch

from .. import optim, recipes  # noqa: F401  (register the built-in optimizers and recipes)
from ..datasets import data_root  # noqa: F401  (the tasks' one data folder)
from ..errors import ReproError
from ..nn import ConvSpec, build_model
from ..nn.quantizers import WEIGHT_SCALES
from ..nn.reparam import apply_reparam
from ..registry import ACTIVATIONS, OPTIMIZERS, QUANTIZERS, RECIPES, REPARAMS


def check_name(value, known, field: str) -> None:
    if value not in known:
        raise ReproError(f"{field}: unknown value '{value}': choose from {', '.join(sorted(known))}")


def check_network(config: dict) -> None:
    """The conv, quantizer, re-parametrization, optimizer and recipe names of a config, and the
    recipes' own options, before anything is stored."""
    conv, train = config["conv"], config["train"]
    check_name(conv["post_activation"], ACTIVATIONS.names(), "conv.post_activation")
    for key in ("input_quantizer", "kernel_quantizer"):
        check_name(conv[key], QUANTIZERS.names(), f"conv.{key}")
    if conv.get("scale") is not None:
        check_name(conv["scale"], WEIGHT_SCALES, "conv.scale")
    check_name((config.get("reparam") or {}).get("kind", "none"), ["none", *REPARAMS.names()], "reparam.kind")
    check_name(train["optimizer"], OPTIMIZERS.names(), "train.optimizer")
    drops = train.get("lr_drop_at")
    if drops is not None and (not isinstance(drops, list) or not all(isinstance(e, int) and e > 0 for e in drops)
                              or drops != sorted(set(drops))):
        raise ReproError(f"train.lr_drop_at must be a list of increasing positive epochs, got {drops!r}")
    for name in RECIPES.names():
        if train.get(name):
            RECIPES[name].check(train[name], config)
    try:
        conv_spec(config)
    except ValueError as exc:  # e.g. a quantizer without a smooth counterpart under progressive quantization
        raise ReproError(f"conv: {exc}") from None


def conv_spec(config: dict) -> ConvSpec:
    """The ConvSpec of a config: ``conv`` plus the smooth sign of progressive quantization."""
    return ConvSpec(**config["conv"])


def build_network(config: dict, model_options: dict) -> torch.nn.Module:
    """``model_options`` (with its ``name``) built with the config's ConvSpec, then re-parametrized."""
    options = dict(model_options)
    return apply_reparam(build_model(options.pop("name"), conv=conv_spec(config), **options), config.get("reparam"))
