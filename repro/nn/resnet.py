"""ResNets for classification, every conv a ``ConvSpec.unit`` (real, BNN, XNOR-Net, ... by config).

Real networks are pre-activation ResNets (He et al. 2016b): each conv unit is BN -> ReLU -> conv,
ending in BN -> ReLU -> global average pool -> fc. Binary networks use the same skeleton with
binary units (BN -> sign -> binary conv -> post-activation), as in XNOR-Net's ResNet.

Binary convention (XNOR-Net, Bulat et al.): the first conv and the final fully-connected layer
stay real, and so do the downsampling shortcuts (BN + 1x1 conv, stride 2); identity shortcuts
carry real values. Only the 3x3 convs of the residual blocks are binary.

``width`` multiplies every channel count (1.0 = the published network); the smoke and proxy
profiles use narrower networks.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..registry import BLOCKS, MODELS
from .blocks import Bottleneck  # noqa: F401  (registers "bottleneck")
from .layers import ConvSpec, ConvUnit, QuantConv2d


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _head(channels: int, n_classes: int) -> nn.Sequential:
    """BN -> ReLU -> global average pool -> real fc (the pre-activation ResNet ending)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, n_classes))


class BasicBlock(nn.Module):
    """Two 3x3 conv units; the first may stride. Shortcut: identity, or a REAL BN + 1x1 conv
    (with the stride) where the shape changes."""

    def __init__(self, cin: int, cout: int, conv: ConvSpec, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv.unit(cin, cout, 3, stride), conv.unit(cout, cout, 3))
        self.skip = (nn.Identity() if cin == cout and stride == 1
                     else ConvUnit(QuantConv2d(cin, cout, 1, stride=stride)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


@MODELS.register("resnet18")
class ResNet18(nn.Module):
    """ImageNet ResNet-18 (He et al.): 7x7/2 conv, 3x3/2 max-pool, 4 stages of 2 basic blocks
    (64, 128, 256, 512 channels; stages 2-4 stride 2 in their first block), average pool, fc.
    Takes any input of at least 32x32 (224 in the paper). Returns logits [B, n_classes]."""

    def __init__(self, n_classes: int = 1000, conv: ConvSpec | dict[str, Any] | None = None,
                 width: float = 1.0, first_last_real: bool = True):
        super().__init__()
        if not first_last_real:
            raise ValueError("resnet18 keeps its first conv and last fc real (first_last_real: true)")
        conv = ConvSpec.from_config(conv)
        widths = [_scaled(c, width) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths):
            blocks += [BasicBlock(cin, cout, conv, stride=1 if stage == 0 else 2), BasicBlock(cout, cout, conv)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _head(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class Subsample(nn.Module):
    """Keep every second pixel: before a block that starts with pointwise ops and 1x1 convs (in
    its body and its projection shortcut), this equals striding those 1x1 convs by 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., ::2, ::2]


@MODELS.register("resnet56")
class CifarBottleneckResNet(nn.Module):
    """CIFAR bottleneck ResNet (liu2020 Fig. 7, "ResNet-56"): 3x3 conv (3 -> ``stem``), then for
    each ``(mid, out)`` of ``stage_widths`` ``blocks_per_stage`` blocks ``block(cin, out, conv,
    mid=mid, **block_args)``; BN -> ReLU -> average pool -> fc.

    The block is any BLOCKS name that takes ``mid`` (``bottleneck``: 1x1 -> 3x3 -> 1x1;
    liu2020's ``lbb``). Downsampling: stages 2 and 3 halve the resolution at their first block
    by subsampling its input (:class:`Subsample`), which is a stride-2 first 1x1 conv and a
    stride-2 1x1 projection shortcut (ResNet v1's placement); BN there takes its statistics
    over the subsampled pixels. First conv and fc are real.
    """

    def __init__(self, n_classes: int = 10, conv: ConvSpec | dict[str, Any] | None = None,
                 block: str = "bottleneck", stem: int = 16, blocks_per_stage: int = 6,
                 stage_widths: Sequence[Sequence[int]] = ((16, 64), (32, 128), (64, 256)),
                 width: float = 1.0, block_args: dict[str, Any] | None = None, first_last_real: bool = True):
        super().__init__()
        if not first_last_real:
            raise ValueError("resnet56 keeps its first conv and fc real (first_last_real: true)")
        conv = ConvSpec.from_config(conv)
        block_class, block_args = BLOCKS[block], dict(block_args or {})
        stem = _scaled(stem, width)
        self.stem = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        cin = stem
        for stage, (mid, out) in enumerate(stage_widths):
            mid, out = _scaled(mid, width), _scaled(out, width)
            for i in range(blocks_per_stage):
                if stage > 0 and i == 0:
                    layers.append(Subsample())
                layers.append(block_class(cin, out, conv, mid=mid, **block_args))
                cin = out
        self.blocks = nn.Sequential(*layers)
        self.head = _head(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
