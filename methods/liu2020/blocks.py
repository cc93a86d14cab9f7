"""The local binary residual block (LBB) of Liu et al., Neurocomputing 2020 (Fig. 1b, eq. 3).

``lbb(cin, cout, conv, sparsity=0.5, activation="relu", conv3x3="sparse_ternary", conv1x1="real")``:

    BN -> act -> 1x1 real (cin -> cout/2)
    BN -> act -> 3x3 fixed sparse ternary (cout/2 -> cout/2)
    BN -> act -> 1x1 real (cout/2 -> cout)      + identity skip

For 256 -> 256: 256->128, 128->128, 128->256, as Newell's bottleneck, of whose 212,992 conv
weights only the 65,536 of the two 1x1 convs are trained (69.2% fewer, eqs. 4-6).

The fixed 3x3 weights (:class:`SparseTernaryConv2d`, sec. 3.4 and 4.1.4.1) are drawn once, at
construction, from torch's global generator (so a run's seed fixes them): exactly
``floor(sparsity * N)`` of the layer's N weights are non-zero (positions uniformly at random, as
LBCNN draws them), each +1 or -1 with probability 1/2. ``sparsity`` is the fraction of NON-zero
weights. They are a buffer, not a Parameter: no optimizer sees them, ``count_parameters`` leaves
them out of ``total`` / ``trainable`` (its ``conv_weight_params`` counts every conv weight, these
included), and the state_dict saves them, so a resumed run keeps its draw.

The LBB is real-valued apart from its fixed filters: it takes the block's ConvSpec for the
uniform block signature but refuses a binary one (its 1x1 convs are real by definition).

Variants (Table 4, sec. 4.1.4.3), as block options:
* ``conv3x3="none"``: LBRN-1, "removing all the 3x3 filters": BN-act-1x1 (cin -> cout/2),
  BN-act-1x1 (cout/2 -> cout);
* ``conv3x3="real"``, ``conv1x1="sparse_ternary"``: LBRN-2, 1x1 convs binarized (fixed sparse
  ternary, the paper's only binarization) while the 3x3 stays real and trained;
* ``conv3x3="half_sparse_ternary"``: LBRN-3, half of the 3x3 filters (output channels) fixed
  sparse ternary, the other half real and trained, concatenated.
``mid``: the inner width (default cout/2, as the hourglass bottleneck; ResNet-LBB-56 of Fig. 7 uses
cout/4, passed by the ``resnet56`` model).
``activation``: the activation before each conv, ``relu`` (eq. 3) or ``sigmoid`` (Table 6).
``layers_1x1=1``: Table 3's LBRN-1 ('only 1 layer of 1x1 filters'): the first 1x1 is dropped,
  BN-act-3x3 (cin -> cout/2) -> BN-act-1x1 (cout/2 -> cout); the kept 1x1 is the one that combines
  the binary filter responses (sec. 3.6: B = D^T V, V the 1x1 filters after the binary ones).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from repro.nn.blocks import skip_connection
from repro.nn.layers import ConvSpec, ConvUnit, QuantConv2d
from repro.registry import BLOCKS

LBB_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}
CONV3X3_KINDS = ("sparse_ternary", "real", "half_sparse_ternary", "none")
CONV1X1_KINDS = ("real", "sparse_ternary")


def sparse_ternary_weight(shape: tuple[int, ...], sparsity: float,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """A {-1, 0, +1} tensor with exactly floor(sparsity * numel) non-zeros, signs +-1 with p = 1/2."""
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity (the fraction of non-zero weights) must be in [0, 1], got {sparsity}")
    n = math.prod(shape)
    k = math.floor(sparsity * n)
    positions = torch.randperm(n, generator=generator)[:k]
    signs = torch.randint(0, 2, (k,), generator=generator).float() * 2 - 1
    weight = torch.zeros(n)
    weight[positions] = signs
    return weight.view(shape)


class SparseTernaryConv2d(nn.Conv2d):
    """A conv whose weight is a fixed sparse {-1, 0, +1} buffer drawn at construction (never trained).

    ``multiplication_free``: the structure profile counts its operations apart from the real
    FLOPs ("a convolution without any multiplication", eq. 3; eq. 9 leaves it out of the FLOPs).
    """

    multiplication_free = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, sparsity: float = 0.5,
                 stride: int = 1, padding: int | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if padding is None else padding, bias=False)
        self.sparsity = float(sparsity)
        shape = tuple(self.weight.shape)
        del self.weight  # the Parameter nn.Conv2d made: replaced by a buffer
        self.register_buffer("weight", sparse_ternary_weight(shape, self.sparsity))

    def reset_parameters(self) -> None:  # called by nn.Conv2d.__init__: the buffer is drawn above
        pass

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sparsity={self.sparsity}, fixed"


def _unit(conv: nn.Module, activation: str) -> ConvUnit:
    """BN -> activation -> conv (eq. 3: 'the batch normalization and activation function precede a
    convolutional layer in LBB')."""
    return ConvUnit(conv, pre_activation=LBB_ACTIVATIONS[activation]())


class _HalfSparseTernary(nn.Module):
    """LBRN-3: half of the 3x3 filters fixed sparse ternary, the other half real; one BN + act."""

    def __init__(self, channels: int, sparsity: float, activation: str):
        super().__init__()
        fixed = channels // 2
        self.bn = nn.BatchNorm2d(channels)
        self.act = LBB_ACTIVATIONS[activation]()
        self.fixed = SparseTernaryConv2d(channels, fixed, 3, sparsity)
        self.real = QuantConv2d(channels, channels - fixed, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(x))
        return torch.cat([self.fixed(x), self.real(x)], dim=1)


@BLOCKS.register("lbb")
class LocalBinaryBlock(nn.Module):
    def __init__(self, cin: int, cout: int, conv: ConvSpec, sparsity: float = 0.5, activation: str = "relu",
                 conv3x3: str = "sparse_ternary", conv1x1: str = "real", layers_1x1: int = 2,
                 mid: int | None = None):
        super().__init__()
        if conv.binary:
            raise ValueError("the LBB is real-valued apart from its fixed sparse ternary filters: "
                             "use conv.binary: false (its options are model.block_args)")
        if activation not in LBB_ACTIVATIONS:
            raise ValueError(f"unknown LBB activation '{activation}': choose from {', '.join(LBB_ACTIVATIONS)}")
        if conv3x3 not in CONV3X3_KINDS:
            raise ValueError(f"unknown conv3x3 '{conv3x3}': choose from {', '.join(CONV3X3_KINDS)}")
        if conv1x1 not in CONV1X1_KINDS:
            raise ValueError(f"unknown conv1x1 '{conv1x1}': choose from {', '.join(CONV1X1_KINDS)}")
        if layers_1x1 not in (1, 2):
            raise ValueError(f"layers_1x1 must be 1 or 2, got {layers_1x1}")
        if layers_1x1 == 1 and conv3x3 not in ("sparse_ternary", "real"):
            raise ValueError(f"layers_1x1: 1 needs a full 3x3 layer (conv3x3 sparse_ternary or real), got '{conv3x3}'")
        if mid is None and cout % 2:
            raise ValueError(f"the LBB needs an even cout, got {cout}")
        if not 0 <= sparsity <= 1:
            raise ValueError(f"sparsity (the fraction of non-zero weights) must be in [0, 1], got {sparsity}")
        mid = cout // 2 if mid is None else mid  # ResNet-LBB-56 (Fig. 7): cout/4

        def one_by_one(i: int, o: int) -> nn.Conv2d:
            return SparseTernaryConv2d(i, o, 1, sparsity) if conv1x1 == "sparse_ternary" else QuantConv2d(i, o, 1)

        layers: list[nn.Module] = [_unit(one_by_one(cin, mid), activation)] if layers_1x1 == 2 else []
        cin_3x3 = mid if layers_1x1 == 2 else cin
        if conv3x3 == "sparse_ternary":
            layers.append(_unit(SparseTernaryConv2d(cin_3x3, mid, 3, sparsity), activation))
        elif conv3x3 == "real":
            layers.append(_unit(QuantConv2d(cin_3x3, mid, 3, padding=1), activation))
        elif conv3x3 == "half_sparse_ternary":
            layers.append(_HalfSparseTernary(mid, sparsity, activation))
        layers.append(_unit(one_by_one(mid, cout), activation))
        self.body = nn.Sequential(*layers)
        self.skip = skip_connection(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)
