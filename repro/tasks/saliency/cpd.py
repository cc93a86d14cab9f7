"""CPD, the cascaded partial decoder of Wu, Su & Huang (CVPR 2019), with a VGG16 or ResNet50 trunk.

As the authors' code (wuzhe71/CPD) builds it:

* The trunk is split after its mid-level stage (VGG16: conv3_3; ResNet50: layer2) into two
  branches, each a copy of the two deeper stages (VGG16: conv4, conv5; ResNet50: layer3, layer4),
  both starting from the same (ImageNet) weights.
* Partial decoder: the low-level stages (conv1-2 / layer1) are dropped; each branch's three
  feature maps go through an RFB-like module (1x1 / 1xk-kx1-dilated-3x3 branches, k = 3, 5, 7
  with dilation k, a 3x3 over their concatenation, a 1x1 residual, ReLU), then the aggregation
  (upsampling, element-wise products, concatenations, 3x3 convs) to one map at the mid stage's
  resolution. Units are conv + BN ("BasicConv2d", no activation).
* Holistic attention: the attention branch's map, sigmoid, blurred by a 31x31 Gaussian (a
  trained parameter initialized as gkern(31, 4)), min-max normalized per map, the element-wise
  max with the sigmoid map, multiplies the mid-level features that feed the detection branch.
* Both maps are upsampled (bilinear) to the input size: ``forward`` returns (attention,
  detection) logits; the detection map is the prediction.

``make_3x3(cin, cout)`` builds the decoder's plain (undilated) 3x3 units, so that another unit
(a paper's block) can replace them; :func:`replace_trunk_3x3` does the same in the trunk.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import VGG16, ResNet50

Make3x3 = Callable[[int, int], nn.Module]


def basic_conv(cin: int, cout: int, kernel=1, padding=0, dilation: int = 1) -> nn.Sequential:
    """CPD's BasicConv2d: conv (no bias) + BN."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False), nn.BatchNorm2d(cout))


def real_3x3(cin: int, cout: int) -> nn.Module:
    return basic_conv(cin, cout, 3, padding=1)


class RFB(nn.Module):
    """CPD's receptive-field block: four branches, a 3x3 over their concatenation, a 1x1 residual."""

    def __init__(self, cin: int, cout: int, make_3x3: Make3x3 = real_3x3):
        super().__init__()
        self.branches = nn.ModuleList([basic_conv(cin, cout)])
        for k in (3, 5, 7):
            self.branches.append(nn.Sequential(
                basic_conv(cin, cout),
                basic_conv(cout, cout, (1, k), padding=(0, k // 2)),
                basic_conv(cout, cout, (k, 1), padding=(k // 2, 0)),
                basic_conv(cout, cout, 3, padding=k, dilation=k)))  # dilated: stays a real conv
        self.conv_cat = make_3x3(4 * cout, cout)
        self.conv_res = basic_conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = self.conv_cat(torch.cat([branch(x) for branch in self.branches], dim=1))
        return F.relu(joined + self.conv_res(x))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """CPD's 2x bilinear upsampling (align_corners=True), to the other map's size."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class Aggregation(nn.Module):
    """CPD's partial decoder: deep (x1), mid (x2) and low (x3) features -> one map at x3's size."""

    def __init__(self, channel: int, make_3x3: Make3x3 = real_3x3):
        super().__init__()
        c = channel
        self.conv_upsample1, self.conv_upsample2, self.conv_upsample3, self.conv_upsample4 = (make_3x3(c, c) for _ in range(4))
        self.conv_upsample5 = make_3x3(2 * c, 2 * c)
        self.conv_concat2 = make_3x3(2 * c, 2 * c)
        self.conv_concat3 = make_3x3(3 * c, 3 * c)
        self.conv4 = make_3x3(3 * c, 3 * c)
        self.conv5 = nn.Conv2d(3 * c, 1, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> torch.Tensor:
        x1_up = _up(x1, x2)
        x2_1 = self.conv_upsample1(x1_up) * x2
        x3_1 = self.conv_upsample2(_up(x1_up, x3)) * self.conv_upsample3(_up(x2, x3)) * x3
        x2_2 = self.conv_concat2(torch.cat([x2_1, self.conv_upsample4(x1_up)], dim=1))
        x3_2 = self.conv_concat3(torch.cat([x3_1, self.conv_upsample5(_up(x2_2, x3))], dim=1))
        return self.conv5(self.conv4(x3_2))


def gaussian_kernel(size: int = 31, nsig: float = 4.0) -> torch.Tensor:
    """CPD's gkern: the normal's mass over ``size`` equal intervals of [-nsig - d/2, nsig + d/2]
    (d = (2 nsig + 1) / size), outer product, square root, normalized to sum 1."""
    interval = (2 * nsig + 1.0) / size
    edges = torch.linspace(-nsig - interval / 2, nsig + interval / 2, size + 1, dtype=torch.float64)
    mass = torch.diff(torch.special.ndtr(edges))
    kernel = torch.sqrt(torch.outer(mass, mass))
    return (kernel / kernel.sum()).float()


class HolisticAttention(nn.Module):
    def __init__(self, size: int = 31, nsig: float = 4.0):
        super().__init__()
        self.gaussian = nn.Parameter(gaussian_kernel(size, nsig)[None, None])  # trained, as CPD's

    def forward(self, attention: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        soft = F.conv2d(attention, self.gaussian, padding=self.gaussian.shape[-1] // 2)
        low = soft.amin(dim=(2, 3), keepdim=True)
        high = soft.amax(dim=(2, 3), keepdim=True)
        soft = (soft - low) / (high - low + 1e-8)
        return x * torch.maximum(soft, attention)


def split_trunk(backbone: str, trunk: nn.Module) -> tuple[nn.Module, list[nn.Module], list[int]]:
    """(shared stages up to the mid level, [mid-deep stage, deepest stage], their three widths)."""
    if backbone == "vgg16":
        f = trunk.features  # conv3_3 + ReLU ends at 15; pool3 + conv4 at 16-22; pool4 + conv5 at 23-29
        widths = [f[14].out_channels, f[21].out_channels, f[28].out_channels]
        return f[:16], [f[16:23], f[23:30]], widths
    shared = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2)
    widths = [layer[-1].conv3.out_channels for layer in (trunk.layer2, trunk.layer3, trunk.layer4)]
    return shared, [trunk.layer3, trunk.layer4], widths


def replace_trunk_3x3(module: nn.Module, make_3x3: Make3x3) -> int:
    """Replace every plain 3x3 conv (stride 1, no dilation, not the input's) by ``make_3x3``; returns
    how many. Strided ones (ResNet's downsampling 3x3s) and the 3-channel input conv stay real."""
    count = 0
    for name, child in list(module.named_children()):
        if (isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3) and child.stride == (1, 1)
                and child.dilation == (1, 1) and child.groups == 1 and child.in_channels != 3):
            setattr(module, name, make_3x3(child.in_channels, child.out_channels))
            count += 1
        else:
            count += replace_trunk_3x3(child, make_3x3)
    return count


class CPD(nn.Module):
    def __init__(self, backbone: str = "vgg16", channel: int = 32, width: float = 1.0,
                 make_3x3: Make3x3 = real_3x3, trunk_3x3: Make3x3 | None = None,
                 load_weights: Callable[[nn.Module], None] | None = None):
        """``make_3x3``: the decoder's 3x3 units; ``trunk_3x3``: where given, the trunk's plain 3x3
        convs are replaced too (after ``load_weights`` filled the trunk in torchvision's layout)."""
        super().__init__()
        trunk = {"vgg16": VGG16, "resnet50": ResNet50}[backbone](width)
        if load_weights is not None:
            load_weights(trunk)
        self.backbone = backbone
        shared, deep, widths = split_trunk(backbone, trunk)
        self.shared = shared
        self.attention_branch = nn.ModuleList(deep)
        self.detection_branch = copy.deepcopy(self.attention_branch)  # both from the same weights
        if trunk_3x3 is not None:
            for part in (self.shared, self.attention_branch, self.detection_branch):
                replace_trunk_3x3(part, trunk_3x3)
        self.rfb_attention = nn.ModuleList([RFB(w, channel, make_3x3) for w in widths])
        self.rfb_detection = nn.ModuleList([RFB(w, channel, make_3x3) for w in widths])
        self.agg_attention = Aggregation(channel, make_3x3)
        self.agg_detection = Aggregation(channel, make_3x3)
        self.attention = HolisticAttention()

    def parts(self) -> dict[str, list[nn.Module]]:
        """The trunk and the decoder (RFBs and aggregations), for the structure profile."""
        return {"backbone": [self.shared, self.attention_branch, self.detection_branch],
                "decoder": [self.rfb_attention, self.rfb_detection, self.agg_attention, self.agg_detection]}

    def _decode(self, branch: nn.ModuleList, rfbs: nn.ModuleList, agg: Aggregation, low: torch.Tensor) -> torch.Tensor:
        mid = branch[0](low)
        deep = branch[1](mid)
        return agg(rfbs[2](deep), rfbs[1](mid), rfbs[0](low))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.shared(x)
        attention = self._decode(self.attention_branch, self.rfb_attention, self.agg_attention, low)
        detection = self._decode(self.detection_branch, self.rfb_detection, self.agg_detection,
                                 self.attention(attention.sigmoid(), low))
        size = x.shape[-2:]
        return (F.interpolate(attention, size=size, mode="bilinear", align_corners=False),
                F.interpolate(detection, size=size, mode="bilinear", align_corners=False))


def decoder_resolution(backbone: str, input_size: int) -> int:
    """The side of the decoder's finest maps (the mid stage's): 1/4 (VGG16) or 1/8 (ResNet50) of the input."""
    return input_size // (4 if backbone == "vgg16" else 8)

