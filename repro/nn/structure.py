"""Parameter counts by kind, FLOPs and model size: the `structure` profile."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .reparam import collapse, is_reparametrized


def _binarized_weight(module: nn.Module) -> bool:
    quantizer = getattr(module, "kernel_quantizer", None)
    return bool(quantizer is not None and getattr(quantizer, "binarizes", False) and quantizer.enabled)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``total``, ``trainable``; ``binary`` = weights of quantized layers whose kernel quantizer
    binarizes and is enabled (the model as it computes now), ``real`` = the rest;
    ``conv_weight_params`` = conv and linear weights only (no BN, bias or PReLU), the convention
    of the papers' counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    binary = conv_weights = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            conv_weights += module.weight.numel()
            if _binarized_weight(module):
                binary += module.weight.numel()
    return {"total": total, "trainable": trainable, "binary": binary, "real": total - binary,
            "conv_weight_params": conv_weights}


def measure(model: nn.Module, input_shape: tuple[int, ...],
            parts: dict[str, list[nn.Module]] | None = None) -> dict[str, float]:
    """Structure of a model for one input of ``input_shape`` (C, H, W), without training.
    ``parts`` (name -> the model's submodules it covers) adds ``<name>_params_m``,
    ``<name>_flops_g`` and ``<name>_binary_macs_g`` for each part (e.g. a trunk and a decoder).

    Conventions (stated, since papers differ): ``params_m`` counts trainable conv and linear
    weights (no BN, bias or PReLU), the papers' convention; ``flops_g`` = 2 x multiply-adds of
    the real-valued convs and linears, bias omitted (liu2020 eq. 7 without its +1, as its tables
    do); binary layers are counted apart as ``binary_macs_g`` (XNOR-popcount operations), and
    so are layers marked ``multiplication_free`` (fixed {-1, 0, +1} weights: additions only).
    Sizes: float32 = 4 bytes a parameter; packed = 1 bit a binary weight + float32 for the rest.
    A re-parametrized model is measured as kept for inference (:func:`collapse` of a copy);
    ``params_training_m`` counts every trainable parameter of the model as trained (factors too).
    """
    training = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if is_reparametrized(model):
        model = collapse(copy.deepcopy(model))
    counts = count_parameters(model)
    real_macs = binary_macs = 0
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    owner = {id(layer): name for name, modules in (parts or {}).items()
             for module in modules for layer in module.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))}
    by_part = {name: {"real": 0, "binary": 0} for name in parts or {}}

    def hook(module, inputs, output):
        nonlocal real_macs, binary_macs
        if isinstance(module, nn.Conv2d):
            macs = output.numel() * (module.in_channels // module.groups) * module.weight[0, 0].numel()
        else:
            macs = output.numel() * module.in_features
        kind = "binary" if _binarized_weight(module) or getattr(module, "multiplication_free", False) else "real"
        if kind == "binary":
            binary_macs += macs
        else:
            real_macs += macs
        if id(module) in owner:
            by_part[owner[id(module)]][kind] += macs

    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    trained = lambda m: isinstance(m.weight, nn.Parameter) and m.weight.requires_grad  # noqa: E731
    trainable_weights = sum(m.weight.numel() for m in layers if trained(m))
    extra = {}
    for name, macs in by_part.items():
        mine = [m for m in layers if owner.get(id(m)) == name]
        extra.update({f"{name}_params_m": sum(m.weight.numel() for m in mine if trained(m)) / 1e6,
                      f"{name}_flops_g": 2 * macs["real"] / 1e9, f"{name}_binary_macs_g": macs["binary"] / 1e9})
    return {
        "params_m": trainable_weights / 1e6,
        "params_total_m": counts["total"] / 1e6,
        "params_trainable_m": counts["trainable"] / 1e6,
        "params_training_m": training / 1e6,
        "params_binary_m": counts["binary"] / 1e6,
        "params_real_m": counts["real"] / 1e6,
        "flops_g": 2 * real_macs / 1e9,
        "binary_macs_g": binary_macs / 1e9,
        "size_float32_mb": counts["total"] * 4 / 2**20,
        "size_packed_mb": (counts["binary"] / 8 + counts["real"] * 4) / 2**20,
        **extra,
    }
