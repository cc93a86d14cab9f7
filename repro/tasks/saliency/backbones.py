"""VGG16 and ResNet50 trunks with torchvision's parameter names, and their ImageNet weights from a
local file (torchvision's state-dict layout), checked tensor by tensor.

Names match ``torchvision.models.vgg16().state_dict()`` (``features.0.weight``, ...) and
``resnet50()`` (``conv1.weight``, ``bn1.running_mean``, ``layer1.0.conv1.weight``,
``layer1.0.downsample.0.weight``, ...), so torchvision's own files load as they are; the classifier
tensors a file also holds (``classifier.*``, ``fc.*``) are not needed and are ignored. torchvision
itself is not imported (it does not import beside the project's CPU torch).

``width`` < 1 scales every width (smoke / proxy); such a trunk cannot take the ImageNet weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import ReproError

VGG16_WIDTHS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
RESNET50_LAYERS = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (planes, blocks, stride)
EXPANSION = 4


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG16(nn.Module):
    """``features`` as torchvision's vgg16 (conv 3x3 + bias, ReLU, max-pool; indices 0-30)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG16_WIDTHS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                cout = scaled(item, width)
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv)."""

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's resnet50 without ``avgpool`` / ``fc``: conv1, bn1, relu, maxpool, layer1-4."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = stem
        for index, (planes, blocks, stride) in enumerate(RESNET50_LAYERS, start=1):
            planes = scaled(planes, width)
            downsample = nn.Sequential(nn.Conv2d(cin, planes * EXPANSION, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * EXPANSION))
            layer = [Bottleneck(cin, planes, stride, downsample)]
            cin = planes * EXPANSION
            layer += [Bottleneck(cin, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


BACKBONES = {"vgg16": VGG16, "resnet50": ResNet50}
# torchvision's own file names, for the message that says where to put them
TORCHVISION_FILES = {"vgg16": "vgg16-397923af.pth", "resnet50": "resnet50-0676ba61.pth (or resnet50-19c8e357.pth)"}


def require_weights(path: Path, backbone: str) -> None:
    """One line saying where to put the ImageNet weights when the file is not there."""
    if not path.is_file():
        raise ReproError(f"{backbone} ImageNet weights not found at {path}: put torchvision's {backbone} state dict "
                         f"there ({TORCHVISION_FILES[backbone]}, saved with torch.save(model.state_dict())), or set "
                         f"model.backbone_weights, or use --profile proxy")


def load_backbone_weights(trunk: nn.Module, path: Path, backbone: str) -> None:
    """Copy an ImageNet state dict (torchvision's layout) into ``trunk``; every tensor the trunk
    needs must be in the file with its shape (BN's ``num_batches_tracked`` excepted: old files lack
    it). A missing file, a missing or mis-shaped tensor: one line naming it (ReproError)."""
    require_weights(path, backbone)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file
        raise ReproError(f"{path}: not a readable torch state dict ({type(exc).__name__}): save torchvision's "
                         f"{backbone} weights with torch.save(model.state_dict())") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ReproError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    own = trunk.state_dict()
    for name, tensor in own.items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in state:
            raise ReproError(f"{path}: tensor '{name}' of {backbone} is missing (expected torchvision's {backbone} "
                             f"state dict, shape {tuple(tensor.shape)})")
        if not isinstance(state[name], torch.Tensor) or state[name].shape != tensor.shape:
            shape = tuple(state[name].shape) if isinstance(state[name], torch.Tensor) else type(state[name]).__name__
            raise ReproError(f"{path}: tensor '{name}' has shape {shape}, {backbone} needs {tuple(tensor.shape)}")
    trunk.load_state_dict({name: state[name] for name in own if name in state}, strict=False)
