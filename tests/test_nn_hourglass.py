import pytest
import torch
from torch import nn

import repro_methods.bulat2017.blocks  # noqa: F401  (registers "hpm")
from repro.nn import ConvSpec, Hourglass, QuantConv2d, build_model, count_parameters
from repro.registry import BLOCKS

REAL = ConvSpec(binary=False)
BINARY = ConvSpec(binary=True, post_activation="prelu")


def _block_count(module):
    block_types = tuple(BLOCKS[name] for name in ("bottleneck", "hpm"))
    return sum(isinstance(m, block_types) for m in module.modules())


@pytest.mark.parametrize("block", ["bottleneck", "hpm"])
@pytest.mark.parametrize("conv", [REAL, BINARY], ids=["real", "binary"])
def test_output_list_and_shapes(block, conv):
    model = build_model("hourglass", block=block, stacks=2, depth=2, features=32, conv=conv)
    outputs = model(torch.randn(2, 3, 32, 32))
    assert len(outputs) == 2
    assert all(o.shape == (2, 16, 8, 8) for o in outputs)


def test_input_size_must_fit_depth():
    model = build_model("hourglass", block="bottleneck", depth=2, features=32)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 3, 40, 40))


def test_thirteen_blocks_per_depth4_hourglass():
    hourglass = Hourglass(4, 16, lambda cin, cout: BLOCKS["bottleneck"](cin, cout, REAL))
    assert _block_count(hourglass) == 13


@pytest.mark.parametrize("block,expected", [("bottleneck", 212_992), ("hpm", 405_504)])
def test_per_block_conv_weights(block, expected):
    assert count_parameters(BLOCKS[block](256, 256, BINARY))["conv_weight_params"] == expected


@pytest.mark.parametrize("block,stacks,expected", [
    ("bottleneck", 1, 3.40e6), ("hpm", 1, 6.22e6), ("hpm", 2, 12.04e6), ("hpm", 3, 17.85e6),
])
def test_paper_size_conv_weight_counts(block, stacks, expected):
    model = build_model("hourglass", block=block, stacks=stacks)
    assert count_parameters(model)["conv_weight_params"] == pytest.approx(expected, rel=0.01)


def test_first_and_last_layers_real_unless_binary_joins():
    model = build_model("hourglass", block="hpm", stacks=2, depth=1, features=16, conv=BINARY)
    assert not isinstance(model.stem[0], QuantConv2d)
    assert type(model.heatmaps[0]) is nn.Conv2d and type(model.feature_joins[0]) is nn.Conv2d
    counts = count_parameters(model)
    assert 0 < counts["binary"] < counts["total"] and counts["binary"] + counts["real"] == counts["total"]
    joined = build_model("hourglass", block="hpm", stacks=2, depth=1, features=16, conv=BINARY, binary_joins=True)
    assert joined.feature_joins[0].conv.kernel_quantizer.binarizes
    assert joined.heads[0][1].conv.kernel_quantizer.binarizes  # the "lin" layer
    assert type(joined.heatmaps[0]) is nn.Conv2d
    assert count_parameters(joined)["binary"] > counts["binary"]
    assert count_parameters(joined)["conv_weight_params"] == counts["conv_weight_params"]


def test_gradients_flow_through_binary_model():
    torch.manual_seed(0)
    model = build_model("hourglass", block="hpm", stacks=2, depth=2, features=32, conv=BINARY)
    outputs = model(torch.randn(2, 3, 32, 32))
    sum(o.pow(2).mean() for o in outputs).backward()
    inner = [m.weight.grad for m in model.hourglasses.modules() if isinstance(m, QuantConv2d)]
    assert inner and all(g is not None and torch.isfinite(g).all() for g in inner)
    assert all(g.abs().sum() > 0 for g in inner)
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_fast_pool_and_upsample_equal_torch_ops():
    import torch.nn.functional as F

    from repro.nn.hourglass import MaxPool2x2, upsample_2x
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 8, 8), (1, 4, 7, 9), (1, 1, 2, 2)]:
        x = torch.randn(*shape, generator=g)
        with torch.inference_mode():
            assert torch.equal(MaxPool2x2()(x), F.max_pool2d(x, 2))
        assert torch.equal(upsample_2x(x), F.interpolate(x, scale_factor=2, mode="nearest"))
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        (upsample_2x(MaxPool2x2()(a)) * 3).sum().backward()
        (F.interpolate(F.max_pool2d(b, 2), scale_factor=2, mode="nearest") * 3).sum().backward()
        assert torch.equal(a.grad, b.grad)
