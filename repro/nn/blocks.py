"""Residual blocks, registered in BLOCKS as ``Block(cin, cout, conv: ConvSpec)``.

Every conv inside a block is built with ``conv.unit(...)``, so the same block is real, binary
or progressively quantized depending only on the ConvSpec it is given.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import BLOCKS
from .layers import ConvSpec, real_projection


def skip_connection(cin: int, cout: int) -> nn.Module:
    """Identity when the width is kept, else a REAL BN + 1x1 conv (skips are never binarized)."""
    return nn.Identity() if cin == cout else real_projection(cin, cout)


@BLOCKS.register("bottleneck")
class Bottleneck(nn.Module):
    """Newell's pre-activation bottleneck: 1x1 (cin -> cout/2), 3x3 (cout/2), 1x1 (cout/2 -> cout).
    ``mid`` sets another inner width (He et al.'s ResNet bottleneck: cout/4)."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec, mid: int | None = None):
        super().__init__()
        if mid is None:
            if cout % 2:
                raise ValueError(f"bottleneck needs an even cout, got {cout}")
            mid = cout // 2
        self.body = nn.Sequential(conv.unit(cin, mid, 1), conv.unit(mid, mid, 3), conv.unit(mid, cout, 1))
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)
