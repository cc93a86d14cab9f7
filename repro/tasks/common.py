"""What every task shares: name checks against the registries, and building the network of a
config (ConvSpec -> registered model -> optional re-parametrization)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ReproError
from ..nn import ConvSpec, build_model
from ..nn.quantizers import WEIGHT_SCALES
from ..nn.registry import ACTIVATIONS, QUANTIZERS, REPARAMS
from ..nn.reparam import apply_reparam


def check_name(value, known, field: str) -> None:
    if value not in known:
        raise ReproError(f"{field}: unknown value '{value}': choose from {', '.join(sorted(known))}")


def check_network(config: dict) -> None:
    """The conv, quantizer and re-parametrization names of a config, before anything is stored."""
    conv, train = config["conv"], config["train"]
    check_name(conv["post_activation"], ACTIVATIONS.names(), "conv.post_activation")
    for key in ("input_quantizer", "kernel_quantizer"):
        check_name(conv[key], QUANTIZERS.names(), f"conv.{key}")
    if conv.get("scale") is not None:
        check_name(conv["scale"], WEIGHT_SCALES, "conv.scale")
    check_name((config.get("reparam") or {}).get("kind", "none"), ["none", *REPARAMS.names()], "reparam.kind")
    check_name(train["optimizer"], ("rmsprop", "adam", "sgd"), "train.optimizer")
    if train.get("reverse_init") and not conv["binary"]:
        raise ReproError("train.reverse_init needs a binary network (conv.binary: true)")


def build_network(config: dict, model_options: dict) -> torch.nn.Module:
    """``model_options`` (with its ``name``) built with the config's ConvSpec, then re-parametrized."""
    options = dict(model_options)
    conv = ConvSpec(**config["conv"], smooth_kind=(config["train"]["progressive"] or {}).get("kind"))
    return apply_reparam(build_model(options.pop("name"), conv=conv, **options), config.get("reparam"))


def data_root() -> Path:
    return Path(os.environ.get("REPRO_DATA_DIR", "data"))
