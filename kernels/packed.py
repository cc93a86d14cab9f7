"""Packed inference: a trained binary model with every binary conv unit on the kernels.

A binary conv unit is ``BN -> sign -> conv(alpha * sign(W)) -> post-activation``
(repro/nn/layers.py ConvUnit). Packed, it becomes one :class:`PackedConvUnit`: the BN folded
into the sign as a per-channel threshold (sign(BN(x)) = -1 where x < t, or x > t for a negative
BN scale), the weights as 1-bit words, alpha as the per-output-channel scale, then the same
post-activation. Everything else (the real first and last layers, skips, pooling, joins) stays
as it was. A unit is packed when its input quantizer is a hard sign and its kernel quantizer is
``scale * sign(W)`` with a per-output-channel scale: the quantizers say so themselves
(``Quantizer.hard_sign``, ``Quantizer.weight_scale``: XNOR-Net's mean |W|, BNN's 1, a learned
alpha, or a plugin's own); any other unit stays as it is.
"""
from __future__ import annotations

import torch
from torch import nn

from repro.nn.layers import ConvUnit
from repro.nn.quantizers import Quantizer

from .ops import PackedConvWeight, binary_conv2d


def _weight_scale(conv: nn.Module) -> torch.Tensor | None:
    kernel = conv.kernel_quantizer
    return kernel.weight_scale(conv.weight.detach()) if isinstance(kernel, Quantizer) else None


def is_binary_unit(module: nn.Module) -> bool:
    if not isinstance(module, ConvUnit) or not isinstance(module.pre_activation, nn.Identity):
        return False
    conv = module.conv
    hard_input = isinstance(conv.input_quantizer, Quantizer) and conv.input_quantizer.hard_sign
    return (hard_input and _weight_scale(conv) is not None and conv.bias is None and conv.groups == 1
            and conv.dilation == (1, 1) and conv.stride[0] == conv.stride[1] and conv.padding[0] == conv.padding[1]
            and isinstance(conv.padding[0], int) and conv.padding_mode == "zeros")


class PackedConvUnit(nn.Module):
    """Folded BN threshold + packed binary conv (scaled) + the unit's post-activation."""

    def __init__(self, unit: ConvUnit):
        super().__init__()
        conv, bn = unit.conv, unit.bn
        weight = conv.weight.detach()
        scale = _weight_scale(conv)  # the kernel quantizer's own: mean |W|, 1, a learned alpha, ...
        packed = PackedConvWeight.from_weight(weight, conv.stride[0], conv.padding[0])
        a = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        beta = bn.bias.detach()
        threshold = torch.where(a != 0, bn.running_mean - beta / torch.where(a != 0, a, 1.0),
                                torch.where(beta >= 0, -torch.inf, torch.inf))  # a = 0: BN(x) = beta, constant sign
        self.register_buffer("weight_bits", packed.bits)
        self.register_buffer("tap_sums", packed.tap_sums)
        self.register_buffer("scale", scale.float().clone())
        self.register_buffer("threshold", threshold.float())
        self.register_buffer("flip", (a < 0).to(torch.uint8))
        self.in_channels, self.stride, self.padding = conv.in_channels, conv.stride[0], conv.padding[0]
        self.post_activation = unit.post_activation
        self._packed: PackedConvWeight | None = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._packed = None  # rebuilt from the loaded buffers at the next forward
        return super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is None:
            self._packed = PackedConvWeight(self.weight_bits, self.tap_sums, self.in_channels, self.stride,
                                            self.padding, self.scale)
        return self.post_activation(binary_conv2d(x.float().contiguous(), self._packed, self.threshold, self.flip))

    def extra_repr(self) -> str:
        o, kh, kw = self.tap_sums.shape
        return f"{self.in_channels}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}, 1-bit"


def pack_model(model: nn.Module) -> int:
    """Replace every hard binary conv unit of ``model`` (in eval mode) by a PackedConvUnit, in
    place; returns how many were packed."""
    model.eval()
    targets = [(name, module) for name, module in model.named_modules() if is_binary_unit(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, PackedConvUnit(module))
    return len(targets)
