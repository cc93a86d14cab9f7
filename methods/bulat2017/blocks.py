"""The hierarchical, parallel & multi-scale (HPM) block of Bulat & Tzimiropoulos, ICCV 2017.

Fig. 4e / "Ours, Final": three 3x3 units in a chain, each feeding the next, widths
cout/2 -> cout/4 -> cout/4; their outputs are concatenated (cout channels) and added to the
skip. For 256 -> 256: 256->128, 128->64, 64->64 (405,504 conv weights).
"""
from __future__ import annotations

import torch
from torch import nn

from repro.nn.blocks import skip_connection
from repro.nn.layers import ConvSpec
from repro.nn.registry import BLOCKS


@BLOCKS.register("hpm")
class HPMBlock(nn.Module):
    def __init__(self, cin: int, cout: int, conv: ConvSpec):
        super().__init__()
        if cout % 4:
            raise ValueError(f"the HPM block needs cout divisible by 4, got {cout}")
        self.conv1 = conv.unit(cin, cout // 2, 3)
        self.conv2 = conv.unit(cout // 2, cout // 4, 3)
        self.conv3 = conv.unit(cout // 4, cout // 4, 3)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        return torch.cat([out1, out2, out3], dim=1) + self.skip(x)
