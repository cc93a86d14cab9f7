"""AlexNet (Krizhevsky et al. 2012) for real and binary networks, every hidden layer a ``ConvSpec.unit``.

Layers (227x227 input): conv1 11x11/4 (3 -> 96) -> BN -> ReLU -> max-pool 3/2; conv2 5x5 (96 -> 256),
max-pool; conv3 3x3 (256 -> 384); conv4 3x3 (384 -> 384); conv5 3x3 (384 -> 256), max-pool;
fc6 (256*6*6 -> 4096); fc7 (4096 -> 4096); BN -> ReLU -> fc8 (4096 -> n_classes).
The original's two-GPU grouping of conv2, conv4 and conv5 is not kept (one tower, as XNOR-Net's
AlexNet), so the network has 62.4M weights instead of the original's 61.0M.

Each hidden layer is a conv unit: real = BN -> ReLU -> conv (pre-activation, with batch norm as in
XNOR-Net's real baseline; no dropout), binary = BN -> sign -> binary conv -> post-activation.
fc6 and fc7 are 1x1 conv units on the flattened features (an fc is a 1x1 conv on a 1x1 map), so
they binarize like every other unit. Binary convention (XNOR-Net): conv1 and fc8 stay real.

The pool5 output is average-pooled to 6x6 (the identity at 227 input, as torchvision does), so
smaller inputs (at least 67 px) work for the smoke and proxy profiles; ``width`` multiplies every
channel count (1.0 = the published network).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import MODELS
from .layers import ConvSpec


@MODELS.register("alexnet")
class AlexNet(nn.Module):
    def __init__(self, n_classes: int = 1000, conv: ConvSpec | dict[str, Any] | None = None,
                 width: float = 1.0, first_last_real: bool = True):
        super().__init__()
        if not first_last_real:
            raise ValueError("alexnet keeps conv1 and fc8 real (first_last_real: true)")
        conv = ConvSpec.from_config(conv)
        c1, c2, c3, c4, c5, fc = (max(1, round(c * width)) for c in (96, 256, 384, 384, 256, 4096))
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=4, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(3, 2),
            conv.unit(c1, c2, 5), nn.MaxPool2d(3, 2),
            conv.unit(c2, c3, 3), conv.unit(c3, c4, 3), conv.unit(c4, c5, 3), nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(6),
        )
        self.classifier = nn.Sequential(
            conv.unit(c5 * 36, fc, 1), conv.unit(fc, fc, 1),
            nn.BatchNorm2d(fc), nn.ReLU(), nn.Flatten(), nn.Linear(fc, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        return self.classifier(features.flatten(1)[:, :, None, None])
