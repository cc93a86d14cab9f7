"""The pre-activation basic block of He et al. [13] ("Identity mappings in deep residual
networks"), the block of bulat2019b's hourglass (sec. 2.1: "we ... simply use the already
well-established basic block with pre-activation introduced in [13]"; sec. 5.1: "The basic block
used has 128 channels").

``basic(cin, cout, conv)``: two 3x3 units, cin -> cout and cout -> cout, plus the skip (identity
when cin == cout, else the core's real BN + 1x1 projection). Each unit is ``conv.unit``: BN -> ReLU
-> conv (real) or BN -> sign -> binary conv (binary). At 128 -> 128: 294,912 conv weights.
"""
from __future__ import annotations

import torch
from torch import nn

from repro.nn.blocks import skip_connection
from repro.nn.layers import ConvSpec
from repro.registry import BLOCKS


@BLOCKS.register("basic")
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, conv: ConvSpec):
        super().__init__()
        self.body = nn.Sequential(conv.unit(cin, cout, 3), conv.unit(cout, cout, 3))
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)
