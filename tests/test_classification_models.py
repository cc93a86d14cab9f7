"""Classification models: output shapes, parameter counts against the known ones, binary convention."""
import pytest
import torch
from torch import nn

import repro_methods.liu2020.blocks  # noqa: F401  (registers "lbb")
from repro.nn import ConvSpec, QuantConv2d, build_model
from repro.nn.structure import count_parameters, measure


def binary_convs(model):
    return [m for m in model.modules() if isinstance(m, QuantConv2d) and m.kernel_quantizer.binarizes]


def test_resnet18_shapes_and_count():
    real = build_model("resnet18", conv=ConvSpec(binary=False), n_classes=1000)
    assert real(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    counts = count_parameters(real)
    # He et al.'s layers: stem, 4 stages of 3x3 convs + 1x1 downsampling shortcuts, fc.
    stages = sum(cin * c * 9 + 3 * c * c * 9 + (cin * c if cin != c else 0)
                 for cin, c in ((64, 64), (64, 128), (128, 256), (256, 512)))
    assert counts["conv_weight_params"] == 3 * 64 * 49 + stages + 512 * 1000 == 11_678_912
    # torchvision's ResNet-18 has 11,689,512 parameters (+ 9,600 BN and 1,000 fc bias); pre-activation
    # puts some batch norms on other widths, which changes only their count.
    assert abs(counts["total"] - 11_689_512) / 11_689_512 < 0.001


def test_resnet18_binary_convention():
    model = build_model("resnet18", conv=ConvSpec(binary=True, kernel_quantizer="bnn_weight"), n_classes=10, width=0.25)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    binary = binary_convs(model)
    assert len(binary) == 16  # the 3x3 convs of the 8 basic blocks
    assert all(m.kernel_size == (3, 3) for m in binary)
    # real: stem conv, the 3 downsampling 1x1 shortcuts, the fc
    real = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in binary]
    assert sorted(tuple(getattr(m, "kernel_size", (0,))) for m in real) == [(0,), (1, 1), (1, 1), (1, 1), (7, 7)]


def test_alexnet_shapes_and_count():
    model = build_model("alexnet", conv=ConvSpec(binary=False), n_classes=1000)
    assert model(torch.randn(2, 3, 227, 227)).shape == (2, 1000)
    weights = count_parameters(model)["conv_weight_params"]
    # Krizhevsky's layers without the two-GPU grouping: 62.37M weights (the grouped original: 60.97M,
    # torchvision's narrower variant 61.1M), 62.38M with the fc8 bias.
    expected = (3 * 96 * 121 + 96 * 256 * 25 + 256 * 384 * 9 + 384 * 384 * 9 + 384 * 256 * 9
                + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert weights == expected == 62_367_776
    assert abs(weights - 61e6) / 61e6 < 0.025  # the gap to the usual "61M", reported, not shaped


def test_alexnet_binary_convention_and_small_inputs():
    model = build_model("alexnet", conv=ConvSpec(binary=True), n_classes=10, width=0.125)
    assert model(torch.randn(2, 3, 72, 72)).shape == (2, 10)
    binary = binary_convs(model)
    assert len(binary) == 6  # conv2-5, fc6, fc7; conv1 and fc8 real
    assert isinstance(model.features[0], nn.Conv2d) and not isinstance(model.features[0], QuantConv2d)
    assert isinstance(model.classifier[-1], nn.Linear)


def test_resnet56_counts_match_the_computed_fig7_network():
    model = build_model("resnet56", conv=ConvSpec(binary=False), n_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 54 + 3  # stem, 18 blocks x 3, 3 projection shortcuts (the 56 = 1 + 54 + fc)
    m = measure(model, (3, 32, 32))
    assert abs(m["params_m"] - 0.582) < 0.001  # [computed] 0.582M (published 0.48M: gap reported)
    lbb = build_model("resnet56", conv=ConvSpec(binary=False), n_classes=10, block="lbb",
                      block_args={"sparsity": 0.5})
    m_lbb = measure(lbb, (3, 32, 32))
    assert abs(m_lbb["params_m"] - 0.292) < 0.001  # 3x3 weights frozen (published 0.19M)
    frozen = [b for b in lbb.buffers() if b.dim() == 4]
    assert len(frozen) == 18 and {b.shape[-1] for b in frozen} == {3}
    assert {b.shape[0] for b in frozen} == {16, 32, 64}  # Fig. 7's mid widths


def test_resnet56_downsamples_at_stages_two_and_three():
    model = build_model("resnet56", conv=ConvSpec(binary=False), n_classes=10)
    sizes = []
    hooks = [blk.register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1]))
             for blk in model.blocks if not type(blk).__name__ == "Subsample"]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert sizes == [32] * 6 + [16] * 6 + [8] * 6


@pytest.mark.parametrize("name,size", [("resnet18", 32), ("alexnet", 67), ("resnet56", 32)])
def test_binary_models_train_a_step(name, size):
    model = build_model(name, conv=ConvSpec(binary=True, post_activation="prelu"), n_classes=10, width=0.125)
    x, y = torch.randn(4, 3, size, size), torch.randint(0, 10, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
