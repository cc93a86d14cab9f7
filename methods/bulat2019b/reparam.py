"""bulat2019b's re-parametrizations of the binary weights (sec. 4.2, Algorithm 1).

Each binary conv's latent weight W becomes a function of real-valued factors, trained in its
place; the kernel quantizer then binarizes the reconstruction: ``W_bin = alpha * sign(W(factors))``
(alpha analytic or learned: ``conv.scale``). Registered in REPARAMS, named by ``reparam.kind``:

* ``svd``: W reshaped to Cout x (Cin*kh*kw) = U V^T (sec. 4.2.1), U = U0 sqrt(S), V = V0 sqrt(S)
  (the singular values split evenly between the two trained factors).
* ``tucker``: W = G x1 U1 x2 U2 x3 U3 x4 U4 (sec. 4.2.2), reconstructed with tensorly's
  ``tucker_to_tensor`` on the PyTorch backend.
* ``holistic_tucker``: one higher-order tensor per group of equally shaped layers, one Tucker
  decomposition per group, so the factors are shared across the layers (sec. 4.2.3). Groupings
  (``groups``):
    - ``hourglass``: the paper's hourglass tensor, modes (stacks, depth, 3 pathways, convs per
      block, Cout, Cin, kh, kw): the binary convs of each level's upper / before / after blocks
      of every stacked hourglass. The text says "7th order" but lists these 8 modes; the list is
      followed ("number of convolutional blocks" read as the convs of a block: 2 for the basic
      block). All those convs must have one shape (true of the basic block at features ->
      features; not of HPM's 128/64/64 convs). Not in the tensor, so layer-wise (``rest``): the
      innermost block of each hourglass, the stem blocks and the head blocks.
    - ``same_shape``: every set of 2 or more binary convs of identical weight shape forms a
      group, a 5th-order tensor (layers, Cout, Cin, kh, kw) as the paper's ResNet-18 groups;
      works on any model made of QuantConv2d layers.
  ``rest``: what the binary convs outside every group get: ``tucker`` (the paper), ``svd``, ``none``.

``ranks``: ``"full"`` (default: the paper's "full-rank core" for Tucker; not given for SVD and
holistic Tucker, full assumed) or a fraction in (0, 1] of each mode's size (rounded up).
Factors are initialized from a decomposition of the layer's initial weights (SVD / HOSVD), so at
full rank the starting W is the one the model was built with. Only convs whose kernel quantizer
binarizes are re-parametrized. ``repro.nn.reparam.collapse`` keeps the reconstructed weights only.
"""
from __future__ import annotations

import math

import tensorly as tl
import torch
from torch import nn
from torch.nn.utils import parametrize

from repro.errors import ReproError
from repro.nn.hourglass import Hourglass
from repro.nn.layers import QuantConv2d
from repro.nn.reparam import SharedFactors, binary_convs
from repro.registry import REPARAMS

PATHWAYS = ("upper", "before", "after")


def mode_ranks(shape: tuple[int, ...], ranks: str | float) -> list[int]:
    if ranks == "full":
        return list(shape)
    if isinstance(ranks, (int, float)) and not isinstance(ranks, bool) and 0 < ranks <= 1:
        return [max(1, math.ceil(ranks * size)) for size in shape]
    raise ReproError(f"reparam.ranks: '{ranks}' is neither 'full' nor a fraction in (0, 1]")


def hosvd(tensor: torch.Tensor, ranks: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated higher-order SVD: factor n = leading left singular vectors of the mode-n
    unfolding (eigenvectors of its Gram matrix, in float64), core = tensor x_n U_n^T.
    Exact at full rank (square orthogonal factors)."""
    factors = []
    for mode, rank in enumerate(ranks):
        unfolded = tensor.detach().movedim(mode, 0).reshape(tensor.shape[mode], -1).double()
        _, vectors = torch.linalg.eigh(unfolded @ unfolded.T)
        factors.append(vectors.flip(1)[:, :rank].to(tensor.dtype).contiguous())
    with tl.backend_context("pytorch"):
        core = tl.tenalg.multi_mode_dot(tensor.detach(), factors, transpose=True)
    return core.contiguous(), factors


def tucker_to_tensor(core: torch.Tensor, factors) -> torch.Tensor:
    with tl.backend_context("pytorch"):
        return tl.tucker_to_tensor((core, list(factors)))


class SVDWeight(nn.Module):
    """Parametrization: weight = (U @ V^T) reshaped to the conv's shape; U, V trained."""

    def __init__(self, ranks: str | float = "full"):
        super().__init__()
        self.ranks = ranks
        self.shape: tuple[int, ...] = ()

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u @ v.T).reshape(self.shape)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.shape = tuple(weight.shape)
        matrix = weight.detach().reshape(weight.shape[0], -1)
        rank = mode_ranks((min(matrix.shape),), self.ranks)[0]
        u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
        root = s[:rank].sqrt()
        return (u[:, :rank] * root).to(weight.dtype), (vh[:rank].T * root).to(weight.dtype)


class TuckerWeight(nn.Module):
    """Parametrization: weight = Tucker(core, U1..U4); core and factors trained."""

    def __init__(self, ranks: str | float = "full"):
        super().__init__()
        self.ranks = ranks

    def forward(self, core: torch.Tensor, *factors: torch.Tensor) -> torch.Tensor:
        return tucker_to_tensor(core, factors)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        core, factors = hosvd(weight, mode_ranks(tuple(weight.shape), self.ranks))
        return (core, *factors)


class GroupTucker(nn.Module):
    """One Tucker decomposition of a group's stacked weights: ``grid + weight shape``.

    The reconstruction is computed once and shared by the layers of the group (cached until the
    factors change or move, the grad mode changes, or a backward pass has gone through it)."""

    def __init__(self, stacked: torch.Tensor, ranks: str | float):
        super().__init__()
        core, factors = hosvd(stacked, mode_ranks(tuple(stacked.shape), ranks))
        self.core = nn.Parameter(core)
        self.factors = nn.ParameterList(nn.Parameter(f) for f in factors)
        self._cache: tuple | None = None

    def full(self) -> torch.Tensor:
        key = (torch.is_grad_enabled(), tuple((p._version, p.data_ptr()) for p in self.parameters()))
        if self._cache is None or self._cache[0] != key:
            tensor = tucker_to_tensor(self.core, self.factors)
            if tensor.requires_grad:
                tensor.register_hook(self._backward_done)
            self._cache = (key, tensor)
        return self._cache[1]

    def _backward_done(self, grad: torch.Tensor) -> None:
        self._cache = None  # its graph is freed: the next forward rebuilds it

    def __getstate__(self):  # deepcopy / pickle without the cached graph
        state = self.__dict__.copy()
        state["_cache"] = None
        return state


class GroupSlice(nn.Module):
    """Parametrization: weight = one layer's slice of its group's reconstruction. The layer keeps
    an empty placeholder as its own tensor; the group lives in the model's SharedFactors."""

    def __init__(self, group: GroupTucker, index: tuple[int, ...]):
        super().__init__()
        self.__dict__["group"] = group  # a plain reference: not a submodule of each layer
        self.index = index

    def forward(self, placeholder: torch.Tensor) -> torch.Tensor:
        return self.group.full()[self.index]

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.new_empty(0)


LAYERWISE = {"svd": SVDWeight, "tucker": TuckerWeight}


def _layerwise(model: nn.Module, kind: str, ranks: str | float, skip: set[int] = frozenset()) -> nn.Module:
    if kind == "none":
        return model
    if kind not in LAYERWISE:
        raise ReproError(f"reparam.rest: unknown value '{kind}': choose from none, {', '.join(LAYERWISE)}")
    mode_ranks((1,), ranks)  # validate before touching the model
    for _, conv in binary_convs(model):
        if id(conv) not in skip:
            parametrize.register_parametrization(conv, "weight", LAYERWISE[kind](ranks))
    return model


@REPARAMS.register("svd")
def svd(model: nn.Module, ranks: str | float = "full") -> nn.Module:
    """Layer-wise SVD of every binary conv (sec. 4.2.1)."""
    return _layerwise(model, "svd", ranks)


@REPARAMS.register("tucker")
def tucker(model: nn.Module, ranks: str | float = "full") -> nn.Module:
    """Layer-wise Tucker of every binary conv (sec. 4.2.2)."""
    return _layerwise(model, "tucker", ranks)


Group = dict[tuple[int, ...], QuantConv2d]  # grid index -> layer


def hourglass_groups(model: nn.Module) -> list[Group]:
    """One group: (stack, level, pathway, conv of the block) -> binary conv of every hourglass."""
    hourglasses = getattr(model, "hourglasses", None)
    if hourglasses is None or not all(isinstance(h, Hourglass) for h in hourglasses):
        raise ReproError("reparam.groups 'hourglass' needs a stacked hourglass model (model.name: hourglass)")
    group: Group = {}
    for stack, node in enumerate(hourglasses):
        level = 0
        while isinstance(node, Hourglass):
            for pathway, name in enumerate(PATHWAYS):
                for j, (_, conv) in enumerate(binary_convs(getattr(node, name))):
                    group[(stack, level, pathway, j)] = conv
            node, level = node.inner, level + 1
    shapes = {tuple(conv.weight.shape) for conv in group.values()}
    convs_per_block = {j for (_, _, _, j) in group}
    if len(shapes) != 1 or len(group) != len(hourglasses) * level * len(PATHWAYS) * len(convs_per_block):
        raise ReproError(f"reparam.groups 'hourglass' needs the hourglass's blocks to have the same number of "
                         f"equally shaped binary convs (found shapes {sorted(shapes)}); use groups: same_shape")
    return [group]


def same_shape_groups(model: nn.Module) -> list[Group]:
    """One group per weight shape shared by 2 or more binary convs: (layer,) -> conv."""
    by_shape: dict[tuple[int, ...], list[QuantConv2d]] = {}
    for _, conv in binary_convs(model):
        by_shape.setdefault(tuple(conv.weight.shape), []).append(conv)
    return [{(i,): conv for i, conv in enumerate(convs)} for convs in by_shape.values() if len(convs) > 1]


GROUPINGS = {"hourglass": hourglass_groups, "same_shape": same_shape_groups}


@REPARAMS.register("holistic_tucker")
def holistic_tucker(model: nn.Module, ranks: str | float = "full", groups: str = "hourglass",
                    rest: str = "tucker") -> nn.Module:
    """One Tucker-decomposed tensor per group of equally shaped binary convs (sec. 4.2.3); the
    other binary convs get ``rest`` layer-wise. The groups are held in ``model.shared_factors``."""
    if groups not in GROUPINGS:
        raise ReproError(f"reparam.groups: unknown value '{groups}': choose from {', '.join(GROUPINGS)}")
    if rest != "none" and rest not in LAYERWISE:
        raise ReproError(f"reparam.rest: unknown value '{rest}': choose from none, {', '.join(LAYERWISE)}")
    shared, grouped = SharedFactors(), set()
    for group in GROUPINGS[groups](model):
        grid = tuple(max(index[d] for index in group) + 1 for d in range(len(next(iter(group)))))
        weight_shape = tuple(next(iter(group.values())).weight.shape)
        stacked = torch.zeros(grid + weight_shape)
        for index, conv in group.items():
            stacked[index] = conv.weight.detach()
        tensor = GroupTucker(stacked, ranks)
        shared.append(tensor)
        for index, conv in group.items():
            parametrize.register_parametrization(conv, "weight", GroupSlice(tensor, index))
            grouped.add(id(conv))
    model.shared_factors = shared
    return _layerwise(model, rest, ranks, skip=grouped)
