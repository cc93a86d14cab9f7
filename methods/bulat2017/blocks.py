"""The blocks of Bulat & Tzimiropoulos, ICCV 2017 (Fig. 4), each ``Block(cin, cout, conv, **options)``.

Every conv is a ``conv.unit`` (BN -> sign -> binary conv for binary networks, BN -> ReLU -> conv
for real ones), so each block is real or binary by its ConvSpec alone. Skips follow the core:
identity when cin == cout, else a real BN + 1x1 projection. Counts below are conv weights at
256 -> 256.

* ``hpm`` (Fig. 4e, "Ours, Final"): three 3x3 units in a chain, widths cout/2 -> cout/4 ->
  cout/4, outputs concatenated (cout channels) + skip: 256->128, 128->64, 64->64 (405,504).
* ``wider`` (Fig. 4b, sec. 4.2): the bottleneck with its thin 3x3 layer widened to cout:
  1x1 cin -> mid, 3x3 mid -> mid, 1x1 mid -> cout with mid = mid_ratio * cout (720,896 at 1.0;
  mid_ratio 0.5 is the bottleneck).
* ``wider_no1x1`` (sec. 5.1, Table 3): the wider block with its 1x1 convs removed, i.e. one 3x3
  unit cin -> cout + skip (589,824). The text's second change, "halving the number of
  parameters", is not said how and is not applied (see the paper.yaml assumption).
* ``ms`` (Fig. 4c, sec. 4.3): left branch 1x1 cin -> cout/4, 3x3 cout/4 -> cout/4; right branch
  max-pool of the input, then a 3x3 and a 5x5 decomposed into two 3x3 (cin -> a, and
  cin -> b -> b, a + b = cout/4), brought back to the input resolution and concatenated;
  both branches concatenated (cout/2) and back-projected by a 1x1 cout/2 -> cout (242,688).
* ``ms_no1x1`` (Fig. 4d, sec. 4.4): ``ms`` with both 1x1 convs removed; without the
  back-projection the concatenation itself has cout channels, Fig. 4c's proportions kept:
  left 3x3 cin -> cout/2, right 3x3 cin -> a and 3x3 cin -> b -> b, a + b = cout/2 (626,688).

Not given by the text (Figs. 4c/4d are lost; options with the conventional default, listed as
assumptions in paper.yaml): how the pooled branch is pooled and returns to full resolution
(``pool_stride``: 2 = 2x2 max-pool, stride 2, nearest x2 upsampling as in the hourglass; 1 = 3x3
max-pool, stride 1, padding 1, Inception style), the share of the right branch given to the 3x3
sub-branch (``split_3x3`` 0.5), the inner width of the decomposed 5x5 (= its output width).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.nn.blocks import skip_connection
from repro.nn.layers import ConvSpec
from repro.registry import BLOCKS


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


@BLOCKS.register("wider")
class WiderBlock(nn.Module):
    """Fig. 4b: 1x1 (cin -> mid), 3x3 (mid -> mid), 1x1 (mid -> cout), mid = round(mid_ratio * cout)."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec, mid_ratio: float = 1.0):
        super().__init__()
        mid = round(mid_ratio * cout)
        if mid < 1:
            raise ValueError(f"mid_ratio {mid_ratio} leaves no channel in the 3x3 layer (cout {cout})")
        self.mid = mid
        self.body = nn.Sequential(conv.unit(cin, mid, 1), conv.unit(mid, mid, 3), conv.unit(mid, cout, 1))
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


@BLOCKS.register("wider_no1x1")
class WiderNo1x1Block(nn.Module):
    """Sec. 5.1 (b): the wider block with its 1x1 convs removed: one 3x3 unit (cin -> cout) + skip."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec):
        super().__init__()
        self.conv = conv.unit(cin, cout, 3)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.skip(x)


class _PooledBranch(nn.Module):
    """Sec. 4.3's right branch: max-pool the input, then a 3x3 (cin -> a) and a 5x5 decomposed
    into two 3x3 (cin -> b -> b) in parallel, concatenated (a + b) at the input resolution."""

    def __init__(self, cin: int, width: int, conv: ConvSpec, pool_stride: int, split_3x3: float):
        super().__init__()
        if pool_stride == 2:
            self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        elif pool_stride == 1:
            self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        else:
            raise ValueError(f"pool_stride must be 1 (3x3 max-pool, same size) or 2 (2x2 max-pool + x2 upsampling), got {pool_stride}")
        if not 0 < split_3x3 < 1:
            raise ValueError(f"split_3x3 must be in (0, 1), got {split_3x3}")
        a = round(width * split_3x3)
        b = width - a
        if a < 1 or b < 1:
            raise ValueError(f"the pooled branch's {width} channels cannot be split {split_3x3}:{1 - split_3x3}")
        self.conv3x3 = conv.unit(cin, a, 3)
        self.conv5x5 = nn.Sequential(conv.unit(cin, b, 3), conv.unit(b, b, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x)
        out = torch.cat([self.conv3x3(pooled), self.conv5x5(pooled)], dim=1)
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="nearest")
        return out


@BLOCKS.register("ms")
class MultiScaleBlock(nn.Module):
    """Fig. 4c: [1x1 cin -> cout/4, 3x3] | [max-pool, 3x3 | 3x3-3x3] (cout/4) -> concat (cout/2) -> 1x1 -> cout."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec, pool_stride: int = 2, split_3x3: float = 0.5):
        super().__init__()
        if cout % 4:
            raise ValueError(f"the MS block needs cout divisible by 4, got {cout}")
        thin = cout // 4
        self.left = nn.Sequential(conv.unit(cin, thin, 1), conv.unit(thin, thin, 3))
        self.right = _PooledBranch(cin, cout // 4, conv, pool_stride, split_3x3)
        self.project = conv.unit(thin + cout // 4, cout, 1)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.left(x), self.right(x)], dim=1)) + self.skip(x)


@BLOCKS.register("ms_no1x1")
class MultiScaleNo1x1Block(nn.Module):
    """Fig. 4d: the MS block without its 1x1 convs: [3x3 cin -> cout/2] | [max-pool, 3x3 | 3x3-3x3] (cout/2)."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec, pool_stride: int = 2, split_3x3: float = 0.5):
        super().__init__()
        if cout % 2:
            raise ValueError(f"the MS block without 1x1 needs an even cout, got {cout}")
        self.left = conv.unit(cin, cout // 2, 3)
        self.right = _PooledBranch(cin, cout - cout // 2, conv, pool_stride, split_3x3)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.left(x), self.right(x)], dim=1) + self.skip(x)
