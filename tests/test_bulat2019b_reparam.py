"""bulat2019b: learned scaling factors and the SVD / Tucker / holistic Tucker re-parametrizations:
full rank keeps the initial weights, gradients reach the factors through the sign STE, the
collapse keeps only the reconstructed weights with the same outputs, and it works on any model
made of QuantConv2d layers."""
import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import repro_methods.bulat2019b  # noqa: F401  (registers "basic" and the reparams)
from repro.errors import ReproError
from repro.nn import ConvSpec, build_model
from repro.nn.quantizers import LearnedScale, SignQuantizer, XnorWeight
from repro.nn.reparam import apply_reparam, binary_convs, collapse, is_reparametrized
from repro_methods.bulat2019b.reparam import GroupTucker

KINDS = ["svd", "tucker", "holistic_tucker"]


def hourglass(scale="learned", stacks=2, block="basic", features=16):
    torch.manual_seed(0)
    return build_model("hourglass", block=block, stacks=stacks, depth=2, features=features,
                       conv=ConvSpec(scale=scale))


class TinyResNet(nn.Module):
    """Not an hourglass: plain QuantConv2d units, two of one shape, one of another."""

    def __init__(self, conv: ConvSpec):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b = conv.unit(8, 8, 3), conv.unit(8, 8, 3)
        self.c = conv.unit(8, 16, 3, stride=2)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.b(self.a(x))
        return self.c(x).mean((2, 3))


def initial_weights(model):
    return {name: conv.weight.detach().clone() for name, conv in binary_convs(model)}


def forward_sum(model, x):
    out = model(x)
    return sum(o.sum() for o in out) if isinstance(out, list) else out.sum()


@pytest.mark.parametrize("kind", KINDS)
def test_full_rank_reproduces_the_initial_weights(kind):
    model = hourglass()
    before = initial_weights(model)
    apply_reparam(model, {"kind": kind, "ranks": "full"})
    assert is_reparametrized(model)
    for name, conv in binary_convs(model):
        assert parametrize.is_parametrized(conv, "weight")
        torch.testing.assert_close(conv.weight, before[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", ["analytic", "learned"])
def test_gradients_reach_the_factors_and_collapse_keeps_outputs(kind, scale):
    model = apply_reparam(hourglass(scale), {"kind": kind})
    x = torch.randn(2, 3, 32, 32)
    forward_sum(model, x).backward()
    factors = [(n, p) for n, p in model.named_parameters() if "original" in n or "shared_factors" in n]
    factors = [(n, p) for n, p in factors if p.numel()]  # holistic layers keep an empty placeholder
    assert factors and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in factors)

    model.eval()
    with torch.no_grad():
        expected = model(x)
    plain = collapse(copy.deepcopy(model))
    assert not is_reparametrized(plain) and not hasattr(plain, "shared_factors")
    assert not any("original" in k or "shared_factors" in k for k in plain.state_dict())
    for _, conv in binary_convs(plain):
        assert type(conv.weight) is nn.Parameter
    with torch.no_grad():
        got, again = plain(x), model(x)  # the original keeps working after its copy is collapsed
    for e, g, a in zip(expected, got, again):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a, e, atol=0, rtol=0)


def test_collapsed_weights_are_the_reconstructions_after_training():
    model = apply_reparam(hourglass(), {"kind": "holistic_tucker"})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(3):
        optimizer.zero_grad()
        forward_sum(model, x).backward()
        optimizer.step()
    reconstructed = initial_weights(model)
    plain = collapse(copy.deepcopy(model))
    for name, conv in binary_convs(plain):
        torch.testing.assert_close(conv.weight.data, reconstructed[name])


def test_holistic_hourglass_tensor_has_the_papers_modes():
    model = apply_reparam(hourglass(stacks=2), {"kind": "holistic_tucker", "groups": "hourglass", "rest": "tucker"})
    (group,) = model.shared_factors
    assert isinstance(group, GroupTucker)
    assert tuple(group.core.shape) == (2, 2, 3, 2, 16, 16, 3, 3)  # stacks, depth, pathways, convs, out, in, kh, kw
    layer_params = [n for n, _ in model.named_parameters() if n.endswith("original0")]
    # layer-wise Tucker, 2 binary convs a block: the stem's 3 blocks, each stack's innermost and head blocks
    assert len(layer_params) == 3 * 2 + 2 * 2 + 2 * 2


def test_holistic_hourglass_needs_equally_shaped_convs():
    with pytest.raises(ReproError, match="same_shape"):
        apply_reparam(hourglass(block="hpm", features=16), {"kind": "holistic_tucker", "groups": "hourglass"})


@pytest.mark.parametrize("kind", KINDS)
def test_works_on_any_quantconv_model(kind):
    torch.manual_seed(0)
    model = TinyResNet(ConvSpec(scale="learned"))
    before = initial_weights(model)
    options = {"groups": "same_shape"} if kind == "holistic_tucker" else {}
    apply_reparam(model, {"kind": kind, **options})
    for name, conv in binary_convs(model):
        torch.testing.assert_close(conv.weight, before[name], atol=1e-6, rtol=0)
    assert not parametrize.is_parametrized(model.stem)  # real layers stay as they are
    if kind == "holistic_tucker":
        (group,) = model.shared_factors  # a and b share one (2, 8, 8, 3, 3) tensor; c is layer-wise
        assert tuple(group.core.shape) == (2, 8, 8, 3, 3)
    x = torch.randn(4, 3, 8, 8)
    forward_sum(model, x).backward()
    model.eval()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(collapse(copy.deepcopy(model))(x), expected, atol=1e-5, rtol=1e-5)


def test_lower_rank_shrinks_the_factors():
    torch.manual_seed(0)
    model = apply_reparam(TinyResNet(ConvSpec()), {"kind": "svd", "ranks": 0.25})
    u = model.a.conv.parametrizations.weight.original0
    assert tuple(u.shape) == (8, 2)  # rank ceil(0.25 * min(8, 72))
    with pytest.raises(ReproError, match="ranks"):
        apply_reparam(TinyResNet(ConvSpec()), {"kind": "tucker", "ranks": 2})


def test_state_dict_round_trip_of_a_holistic_model():
    """What checkpoints and resumed runs rely on: a fresh build loads the trained factors."""
    model = apply_reparam(hourglass(), {"kind": "holistic_tucker"})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, 32, 32)
    forward_sum(model, x).backward()
    optimizer.step()
    state = model.state_dict()
    assert [k for k in state if "core" in k] == ["shared_factors.0.core"]  # stored once, not per layer
    assert sum(k.endswith("original0") for k in state) == 14  # layer-wise Tucker cores (the rest)
    torch.manual_seed(1)
    fresh = apply_reparam(build_model("hourglass", block="basic", stacks=2, depth=2, features=16,
                                      conv=ConvSpec(scale="learned")), {"kind": "holistic_tucker"})
    fresh.load_state_dict(state)
    model.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[-1], model(x)[-1])


# --- learned scaling factors (sec. 4.3) ---

def test_scale_field_builds_the_kernel_quantizer():
    analytic = ConvSpec(scale="analytic").unit(4, 6, 3).conv.kernel_quantizer
    learned = ConvSpec(scale="learned").unit(4, 6, 3).conv.kernel_quantizer
    plain = ConvSpec(kernel_quantizer="xnor_weight", scale="none").unit(4, 6, 3).conv.kernel_quantizer
    assert isinstance(analytic, XnorWeight) and isinstance(plain, SignQuantizer)
    assert isinstance(learned, LearnedScale) and tuple(learned.alpha.shape) == (6, 1, 1, 1)
    assert torch.equal(learned.alpha, torch.ones(6, 1, 1, 1))  # the authors' library initializes to ones
    w = torch.randn(6, 4, 3, 3)
    torch.testing.assert_close(learned(w), torch.where(w >= 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="scale"):
        ConvSpec(scale="magic")


def test_learned_scales_receive_gradients_and_change():
    model = hourglass("learned")
    scales = [m.alpha for m in model.modules() if isinstance(m, LearnedScale)]
    assert len(scales) == len(binary_convs(model))
    start = [a.detach().clone() for a in scales]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    x, target = torch.randn(2, 3, 32, 32), torch.rand(2, 16, 8, 8)
    for _ in range(3):
        optimizer.zero_grad()
        loss = sum(nn.functional.binary_cross_entropy_with_logits(o, target) for o in model(x))
        loss.backward()
        assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in scales)
        optimizer.step()
    assert all(not torch.equal(a, s) for a, s in zip(scales, start))
