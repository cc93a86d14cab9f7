"""liu2020's local binary residual block (LBB): structure, counts, the fixed sparse ternary filters,
and the LBRN-S rows it makes runnable."""
import math

import pytest
import torch
from torch import nn

import repro_methods.liu2020  # noqa: F401  (registers lbb)
from repro.config import resolve
from repro.nn import ConvSpec, build_model, count_parameters
from repro.plugins import get_paper
from repro.registry import BLOCKS
from repro.tasks.pose import PoseTask
from repro_methods.liu2020.blocks import SparseTernaryConv2d, sparse_ternary_weight

REAL = ConvSpec(binary=False)


def trainable_conv_weights(module):
    return sum(m.weight.numel() for m in module.modules()
               if isinstance(m, nn.Conv2d) and isinstance(m.weight, nn.Parameter) and m.weight.requires_grad)


def fixed_convs(module):
    return [m for m in module.modules() if isinstance(m, SparseTernaryConv2d)]


def test_lbb_256_counts_match_the_paper():
    block = BLOCKS["lbb"](256, 256, REAL)
    assert block(torch.randn(2, 256, 8, 8)).shape == (2, 256, 8, 8)
    counts = count_parameters(block)
    bn = sum(p.numel() for m in block.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert trainable_conv_weights(block) == 65_536 == counts["trainable"] - bn  # 2 x 256 x 128
    assert counts["conv_weight_params"] == 212_992 == count_parameters(BLOCKS["bottleneck"](256, 256, REAL))["conv_weight_params"]
    assert counts["total"] == counts["trainable"]  # the fixed 3x3 weights are no parameters at all
    assert 1 - 65_536 / 212_992 == pytest.approx(0.692, abs=5e-4)  # "69.2% fewer trainable parameters"
    (fixed,) = fixed_convs(block)
    assert tuple(fixed.weight.shape) == (128, 128, 3, 3)


def test_lbb_structure_follows_eq3():
    block = BLOCKS["lbb"](256, 256, REAL)
    first, ternary, last = block.body
    assert isinstance(block.skip, nn.Identity)
    assert [type(u.pre_activation) for u in block.body] == [nn.ReLU] * 3  # BN -> ReLU before each conv
    assert (first.conv.in_channels, first.conv.out_channels, first.conv.kernel_size) == (256, 128, (1, 1))
    assert isinstance(ternary.conv, SparseTernaryConv2d) and ternary.conv.padding == (1, 1)
    assert (last.conv.in_channels, last.conv.out_channels, last.conv.kernel_size) == (128, 256, (1, 1))
    sigmoid = BLOCKS["lbb"](256, 256, REAL, activation="sigmoid")
    assert [type(u.pre_activation) for u in sigmoid.body] == [nn.Sigmoid] * 3
    widening = BLOCKS["lbb"](64, 128, REAL)  # stem block: real BN + 1x1 projection skip
    assert count_parameters(widening)["conv_weight_params"] == 64 * 64 + 64 * 64 * 9 + 64 * 128 + 64 * 128


def test_fixed_weights_are_frozen():
    torch.manual_seed(0)
    block = BLOCKS["lbb"](16, 16, REAL)
    (fixed,) = fixed_convs(block)
    assert not fixed.weight.requires_grad
    assert all(p is not fixed.weight for p in block.parameters())
    assert "body.1.conv.weight" in dict(block.named_buffers()) and "body.1.conv.weight" in block.state_dict()
    before, first_1x1 = fixed.weight.clone(), block.body[0].conv.weight.detach().clone()
    optimizer = torch.optim.RMSprop(block.parameters(), lr=1e-2)
    block(torch.randn(4, 16, 6, 6)).square().mean().backward()
    optimizer.step()
    assert fixed.weight.grad is None and torch.equal(fixed.weight, before)
    assert not torch.equal(block.body[0].conv.weight, first_1x1)  # the 1x1 convs do train


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.9, 1.0, 0.0])
def test_sparsity_is_exact(sparsity):
    conv = SparseTernaryConv2d(128, 128, 3, sparsity)
    weight = conv.weight
    n = weight.numel()
    assert int((weight != 0).sum()) == math.floor(sparsity * n)
    assert set(weight.unique().tolist()) <= {-1.0, 0.0, 1.0}
    nonzero = weight[weight != 0]
    if nonzero.numel():
        assert abs(nonzero.mean().item()) < 0.05  # +1 / -1 with probability 1/2


def test_draw_is_deterministic_given_the_seed():
    torch.manual_seed(3)
    a = sparse_ternary_weight((8, 8, 3, 3), 0.5)
    torch.manual_seed(3)
    b = sparse_ternary_weight((8, 8, 3, 3), 0.5)
    torch.manual_seed(4)
    c = sparse_ternary_weight((8, 8, 3, 3), 0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError):
        sparse_ternary_weight((2, 2), 1.5)


@pytest.mark.parametrize("options,trainable,total_conv", [
    ({"conv3x3": "none"}, 65_536, 65_536),  # Table 4 LBRN-1
    ({"conv3x3": "real", "conv1x1": "sparse_ternary"}, 147_456, 212_992),  # LBRN-2
    ({"conv3x3": "half_sparse_ternary"}, 65_536 + 73_728, 212_992),  # LBRN-3: 64 of 128 filters real
    ({"conv3x3": "real"}, 212_992, 212_992),  # = the real bottleneck
])
def test_lbb_variants(options, trainable, total_conv):
    block = BLOCKS["lbb"](256, 256, REAL, **options)
    assert block(torch.randn(2, 256, 4, 4)).shape == (2, 256, 4, 4)
    assert trainable_conv_weights(block) == trainable
    assert count_parameters(block)["conv_weight_params"] == total_conv


def test_lbb_rejects_bad_options():
    with pytest.raises(ValueError, match="conv.binary"):
        BLOCKS["lbb"](16, 16, ConvSpec(binary=True))
    for options in ({"activation": "tanh"}, {"conv3x3": "binary"}, {"conv1x1": "xnor"}, {"sparsity": -0.1}):
        with pytest.raises(ValueError):
            BLOCKS["lbb"](16, 16, REAL, **options)


def test_lbrn_s_hourglass_counts():
    model = build_model("hourglass", block="lbb", stacks=1, conv=REAL)
    bottleneck = build_model("hourglass", block="bottleneck", stacks=1, conv=REAL)
    assert count_parameters(model)["conv_weight_params"] == count_parameters(bottleneck)["conv_weight_params"]
    fixed = sum(m.weight.numel() for m in fixed_convs(model))
    assert fixed == 14 * 128 * 128 * 9 + 64 * 64 * 9 + 64 * 64 * 9 + 128 * 128 * 9  # 14 full blocks + the stem's 3
    assert trainable_conv_weights(model) == count_parameters(model)["conv_weight_params"] - fixed


RUNNABLE_ROWS = [("1", "lbrn_s"), ("3", "lbrn_256"), ("4", "lbrn1_no_3x3"), ("4", "lbrn2_binary_1x1"),
                 ("4", "lbrn3_half_binary_3x3"), ("5", "lbrn_8"), ("5", "lbrn_4"), ("6", "lbrn_relu"),
                 ("6", "lbrn_sigmoid")]


@pytest.mark.parametrize("table_id,row_id", RUNNABLE_ROWS)
def test_runnable_row_smoke_forward(table_id, row_id):
    table = get_paper("liu2020").table(table_id)
    row = table.row(row_id)
    assert row.runnable
    config = resolve(table, row, "smoke", 0).config
    torch.manual_seed(0)
    model = PoseTask().build_model(config)
    assert fixed_convs(model) or row.spec["model"]["block_args"].get("conv3x3") == "none"
    size = config["data"]["input_size"]
    outputs = model(torch.randn(2, 3, size, size))
    assert len(outputs) == config["model"]["stacks"]
    assert outputs[-1].shape == (2, 16, size // 4, size // 4) and torch.isfinite(outputs[-1]).all()


def test_lbrn_s_paper_size():
    table = get_paper("liu2020").table("1")
    config = resolve(table, table.row("lbrn_s"), "paper", 0).config
    model = PoseTask().build_model(config)
    blocks = [m for m in model.modules() if isinstance(m, BLOCKS["lbb"])]
    assert len(blocks) == 8 * 14 + 3  # per stack 13 hourglass blocks + 1 head block, plus the stem's 3
    full = [b for b in blocks if b.body[0].conv.in_channels == 256]
    assert all(trainable_conv_weights(b) == 65_536 for b in full)
    assert all(fixed.sparsity == 0.5 for fixed in fixed_convs(model))
