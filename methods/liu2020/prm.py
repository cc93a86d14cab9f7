"""The pyramid residual module (PRM) of Yang et al., ICCV 2017, that liu2020 compares against
(Fig. 1c, sec. 3.2), and LBRN-P, the same module with liu2020's fixed sparse ternary 3x3 filters.

liu2020 describes its PRM as three branches added together: an identity, "the same structure as
the block in SHN", and a pyramid branch "separated into multi-branches again", each at a
subsampling ratio s_c = 2^(-c/C) reached by fractional max-pooling (smallest 1/2 for c = C),
cardinality C = 4 (sec. 4.1.1). Fig. 1c is lost; the layout is Yang et al.'s PRM-B as their code
builds it (bearpaw/PyraNet ``models/layers/PRM.lua``), whose 2-stack MPII recipe (batch 6,
250 epochs, lr 2.5e-4, cardinality 4) is the one liu2020 states:

    main     BN-act-1x1 (cin -> cout/2) -> BN-act-3x3 (cout/2 -> cout/2)
    pyramid  BN-act-1x1 (cin -> D) -> BN-act -> sum_c up(3x3 (D -> D)(FMP_{s_c}(.))) -> BN-act-1x1 (D -> cout/2)
    output   BN-act-1x1 (cout/2 -> cout) of (main + pyramid), + skip (identity, or the core's
             real BN + 1x1 projection when the width changes)

with D = floor(cout / base_width), base_width 9 (PyraNet's default; liu2020 gives no width),
FMP = fractional max-pooling with 2x2 regions to floor(s_c * size), and ``up`` bilinear back to
the input size (align_corners, as Torch7's SpatialUpSamplingBilinear).

``conv3x3``: ``real`` (PRM) or ``sparse_ternary`` (LBRN-P, "only the 3x3 convolutions are
binarized", Fig. 1c): every 3x3, the main one and the C pyramid ones, is a fixed sparse
{-1, 0, +1} conv (blocks.SparseTernaryConv2d); the 1x1 convs stay real and trained.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.nn.blocks import skip_connection
from repro.nn.layers import ConvSpec, ConvUnit, QuantConv2d
from repro.registry import BLOCKS

from .blocks import LBB_ACTIVATIONS, SparseTernaryConv2d

PRM_CONV3X3 = ("real", "sparse_ternary")


class FractionalMaxPool(nn.Module):
    """Fractional max-pooling (Graham 2014) with 2x2 regions to floor(ratio * size).

    In training the pooling regions are pseudo-random per sample and channel (torch's draw, as
    Torch7's); in eval they are fixed (the sample u = 0.5 for every plane), so evaluation and
    the structure measurements are deterministic.
    """

    def __init__(self, ratio: float):
        super().__init__()
        if not 0 < ratio <= 1:
            raise ValueError(f"fractional max-pooling ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        output = (max(1, int(h * self.ratio)), max(1, int(w * self.ratio)))
        if output == (h, w):
            return x
        kernel = (min(2, h - output[0] + 1), min(2, w - output[1] + 1))
        samples = None if self.training else x.new_full((x.shape[0], x.shape[1], 2), 0.5)
        return F.fractional_max_pool2d(x, kernel, output_size=output, _random_samples=samples)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio:.4f}"


class _PyramidLevel(nn.Module):
    """FMP to ratio s_c -> 3x3 conv -> bilinear upsampling back to the input size."""

    def __init__(self, conv: nn.Conv2d, ratio: float):
        super().__init__()
        self.pool = FractionalMaxPool(ratio)
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return y


class PyramidResidual(nn.Module):
    def __init__(self, cin: int, cout: int, conv: ConvSpec, cardinality: int = 4, base_width: int = 9,
                 conv3x3: str = "real", sparsity: float = 0.5, activation: str = "relu"):
        super().__init__()
        if conv.binary:
            raise ValueError("the PRM blocks are real-valued (LBRN-P: apart from the fixed sparse ternary 3x3 "
                             "filters): use conv.binary: false (their options are model.block_args)")
        if conv3x3 not in PRM_CONV3X3:
            raise ValueError(f"unknown conv3x3 '{conv3x3}': choose from {', '.join(PRM_CONV3X3)}")
        if activation not in LBB_ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}': choose from {', '.join(LBB_ACTIVATIONS)}")
        if cardinality < 1 or base_width < 1:
            raise ValueError(f"cardinality and base_width must be >= 1, got {cardinality} and {base_width}")
        if cout % 2:
            raise ValueError(f"the PRM needs an even cout, got {cout}")
        mid, width = cout // 2, max(1, cout // base_width)
        self.cardinality, self.width = cardinality, width

        def unit(cin_: int, cout_: int, kernel: int) -> ConvUnit:
            if kernel == 3 and conv3x3 == "sparse_ternary":
                layer = SparseTernaryConv2d(cin_, cout_, 3, sparsity)
            else:
                layer = QuantConv2d(cin_, cout_, kernel, padding=kernel // 2)
            return ConvUnit(layer, pre_activation=LBB_ACTIVATIONS[activation]())

        def pyramid_conv() -> nn.Conv2d:
            if conv3x3 == "sparse_ternary":
                return SparseTernaryConv2d(width, width, 3, sparsity)
            return QuantConv2d(width, width, 3, padding=1)

        self.main = nn.Sequential(unit(cin, mid, 1), unit(mid, mid, 3))
        self.pyramid_in = unit(cin, width, 1)
        self.pyramid_bn = nn.BatchNorm2d(width)  # one BN + activation shared by the C levels
        self.pyramid_act = LBB_ACTIVATIONS[activation]()
        # s_c = 2^(-c/C), c = 1..C: 2^-0.25, 2^-0.5, 2^-0.75, 1/2 for C = 4 (c = 0 is the main branch).
        self.levels = nn.ModuleList(_PyramidLevel(pyramid_conv(), 2 ** (-c / cardinality))
                                    for c in range(1, cardinality + 1))
        self.pyramid_out = unit(width, mid, 1)
        self.out = unit(mid, cout, 1)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pyramid_act(self.pyramid_bn(self.pyramid_in(x)))
        p = sum(level(p) for level in self.levels)
        return self.out(self.main(x) + self.pyramid_out(p)) + self.skip(x)


@BLOCKS.register("prm")
def prm(cin: int, cout: int, conv: ConvSpec, **options) -> PyramidResidual:
    """Yang et al.'s real PRM (PRM-B)."""
    return PyramidResidual(cin, cout, conv, **{"conv3x3": "real", **options})


@BLOCKS.register("prm_lbb")
def prm_lbb(cin: int, cout: int, conv: ConvSpec, **options) -> PyramidResidual:
    """LBRN-P: the PRM with every 3x3 conv fixed sparse ternary (Fig. 1c)."""
    return PyramidResidual(cin, cout, conv, **{"conv3x3": "sparse_ternary", **options})
