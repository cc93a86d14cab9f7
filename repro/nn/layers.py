"""Quantized layers, activations, and the conv unit every block is made of.

A binary conv is an ordinary conv that takes an ``input_quantizer`` and a ``kernel_quantizer``
(larq style); methods differ by what they plug in. :class:`ConvSpec` is the single place that
knows how a conv unit is assembled for a real or a binary network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ACTIVATIONS, QUANTIZERS
from .quantizers import WEIGHT_SCALES, NoQuantizer, with_weight_scale

QuantizerLike = nn.Module | str | None


def _as_quantizer(quantizer: QuantizerLike) -> nn.Module:
    if quantizer is None:
        return NoQuantizer()
    if isinstance(quantizer, str):
        return QUANTIZERS.build(quantizer)
    return quantizer


class QuantConv2d(nn.Conv2d):
    """``conv2d(input_quantizer(x), kernel_quantizer(weight))``; quantizers default to identity.

    The input is quantized before padding, so zero padding contributes 0 (see quantizers.py).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = False, input_quantizer: QuantizerLike = None,
                 kernel_quantizer: QuantizerLike = None, **conv_kwargs: Any):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias, **conv_kwargs)
        self.input_quantizer = _as_quantizer(input_quantizer)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.input_quantizer(x), self.kernel_quantizer(self.weight), self.bias)


class QuantLinear(nn.Linear):
    """``linear(input_quantizer(x), kernel_quantizer(weight))``; bias on by default, as nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 input_quantizer: QuantizerLike = None, kernel_quantizer: QuantizerLike = None):
        super().__init__(in_features, out_features, bias=bias)
        self.input_quantizer = _as_quantizer(input_quantizer)
        self.kernel_quantizer = _as_quantizer(kernel_quantizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quantizer(x), self.kernel_quantizer(self.weight), self.bias)


# --- activations: factories take the channel count (PReLU needs it) plus their own options ---

@ACTIVATIONS.register("none")
def _identity(channels: int) -> nn.Module:
    return nn.Identity()


@ACTIVATIONS.register("relu")
def _relu(channels: int) -> nn.Module:
    return nn.ReLU()


@ACTIVATIONS.register("leakyrelu")
def _leaky_relu(channels: int, negative_slope: float = 0.01) -> nn.Module:
    """Slope 0.01 is PyTorch's default (convention): Bulat et al. 2019 do not give theirs."""
    return nn.LeakyReLU(negative_slope)


@ACTIVATIONS.register("prelu")
def _prelu(channels: int, per_channel: bool = False, init: float = 0.25) -> nn.Module:
    """Learnable slope, initialized at 0.25 (PyTorch). Bulat et al. 2019 found a single slope
    and one per channel similar; single is the default."""
    return nn.PReLU(num_parameters=channels if per_channel else 1, init=init)


def make_activation(name: str, channels: int, **kwargs: Any) -> nn.Module:
    return ACTIVATIONS.build(name, channels=channels, **kwargs)


class ConvUnit(nn.Module):
    """``BN -> pre_activation -> conv -> post_activation``.

    Real (Newell, pre-activation): BN -> ReLU -> conv. Binary (XNOR-Net / Bulat 2017):
    BN -> conv(sign input, binary kernel) -> post activation (Bulat 2019's PReLU etc.).
    """

    def __init__(self, conv: QuantConv2d, pre_activation: nn.Module | None = None,
                 post_activation: nn.Module | None = None):
        super().__init__()
        self.bn = nn.BatchNorm2d(conv.in_channels)
        self.pre_activation = pre_activation if pre_activation is not None else nn.Identity()
        self.conv = conv
        self.post_activation = post_activation if post_activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_activation(self.conv(self.pre_activation(self.bn(x))))


@dataclass(frozen=True)
class ConvSpec:
    """How the conv units of a network are built.

    ``binary=False``: the real Newell unit (BN -> ReLU -> conv); the other fields are ignored.
    ``binary=True``: BN -> QuantConv2d(input_quantizer, kernel_quantizer) -> post_activation.
    ``scale`` (none / analytic / learned) replaces the kernel quantizer's own weight scaling
    factor (:func:`with_weight_scale`); None keeps the kernel quantizer as it is.
    """

    binary: bool = True
    input_quantizer: str = "sign"
    kernel_quantizer: str = "xnor_weight"
    post_activation: str = "none"
    leaky_slope: float = 0.01
    prelu_per_channel: bool = False
    scale: str | None = None

    def __post_init__(self) -> None:
        for name in (self.input_quantizer, self.kernel_quantizer):
            if name not in QUANTIZERS:
                QUANTIZERS[name]  # raises KeyError listing the known names
        if self.post_activation not in ACTIVATIONS:
            ACTIVATIONS[self.post_activation]
        if self.scale is not None and self.scale not in WEIGHT_SCALES:
            raise ValueError(f"unknown scale '{self.scale}'; choose from {', '.join(WEIGHT_SCALES)}")

    def _kernel_quantizer(self, channels: int) -> nn.Module:
        quantizer = QUANTIZERS.build(self.kernel_quantizer)
        return quantizer if self.scale is None else with_weight_scale(quantizer, self.scale, channels)

    def _post_activation(self, channels: int) -> nn.Module:
        options = {"leakyrelu": {"negative_slope": self.leaky_slope},
                   "prelu": {"per_channel": self.prelu_per_channel}}.get(self.post_activation, {})
        return make_activation(self.post_activation, channels, **options)

    def unit(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> ConvUnit:
        padding = kernel_size // 2
        if not self.binary:
            return ConvUnit(QuantConv2d(cin, cout, kernel_size, stride, padding), pre_activation=nn.ReLU())
        conv = QuantConv2d(cin, cout, kernel_size, stride, padding,
                           input_quantizer=QUANTIZERS.build(self.input_quantizer),
                           kernel_quantizer=self._kernel_quantizer(cout))
        return ConvUnit(conv, post_activation=self._post_activation(cout))

    @classmethod
    def from_config(cls, value: ConvSpec | dict[str, Any] | None) -> ConvSpec:
        """Accept a ConvSpec, a plain mapping (from a config file) or None (binary XNOR default)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        return cls(**value)


def real_projection(cin: int, cout: int) -> ConvUnit:
    """BN + real 1x1 conv, no activation: the skip path of blocks whose width changes.
    Skips stay real in binary networks too (as in the authors' code)."""
    return ConvUnit(QuantConv2d(cin, cout, 1))
