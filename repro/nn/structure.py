"""Parameter counts by kind (FLOPs come later)."""
from __future__ import annotations

from torch import nn


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
