import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repro.nn import ConvSpec, ConvUnit, QuantConv2d, QuantLinear, make_activation, set_quantizers_enabled, smooth_quantizers
from repro.nn.quantizers import LearnedScale, NoQuantizer, Quantizer, SignQuantizer, SmoothSign, XnorWeight


def _sign(t):
    return torch.where(t >= 0, 1.0, -1.0)


X = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])


def test_activation_values():
    assert torch.equal(make_activation("none", 5)(X), X)
    assert make_activation("relu", 5)(X).tolist() == [[0, 0, 0, 0.5, 3]]
    assert torch.allclose(make_activation("leakyrelu", 5)(X), torch.tensor([[-0.02, -0.005, 0, 0.5, 3]]))
    assert torch.allclose(make_activation("leakyrelu", 5, negative_slope=0.1)(X),
                          torch.tensor([[-0.2, -0.05, 0, 0.5, 3]]))
    assert torch.allclose(make_activation("prelu", 5)(X), torch.tensor([[-0.5, -0.125, 0, 0.5, 3]]))


def test_prelu_slope_shape_and_gradient():
    single = make_activation("prelu", 8)
    per_channel = make_activation("prelu", 8, per_channel=True)
    assert single.weight.shape == (1,) and per_channel.weight.shape == (8,)
    x = torch.randn(2, 8, 4, 4)
    per_channel(x).sum().backward()
    assert per_channel.weight.grad is not None and (per_channel.weight.grad != 0).all()


def test_quant_conv_equals_conv_on_binarized_tensors():
    torch.manual_seed(0)
    conv = QuantConv2d(4, 6, 3, padding=1, input_quantizer="sign", kernel_quantizer="xnor_weight")
    x = torch.randn(2, 4, 8, 8)
    alpha = conv.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(_sign(x), alpha * _sign(conv.weight), padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_quant_conv_defaults_to_real_conv_and_linear_works():
    torch.manual_seed(0)
    conv = QuantConv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(1, 3, 8, 8)
    assert conv.bias is None and torch.allclose(conv(x), F.conv2d(x, conv.weight, stride=2, padding=1))
    lin = QuantLinear(4, 3, input_quantizer="sign", kernel_quantizer="bnn_weight")
    v = torch.randn(2, 4)
    assert torch.allclose(lin(v), F.linear(_sign(v), _sign(lin.weight), lin.bias))


def test_conv_unit_real_structure():
    unit = ConvSpec(binary=False).unit(8, 16, 3)
    assert isinstance(unit, ConvUnit) and isinstance(unit.bn, nn.BatchNorm2d)
    assert isinstance(unit.pre_activation, nn.ReLU) and isinstance(unit.post_activation, nn.Identity)
    assert isinstance(unit.conv.input_quantizer, NoQuantizer) and isinstance(unit.conv.kernel_quantizer, NoQuantizer)
    assert unit.conv.padding == (1, 1) and unit.conv.weight.shape == (16, 8, 3, 3)


def test_conv_unit_binary_structure_and_post_activations():
    unit = ConvSpec(binary=True).unit(8, 16, 1)
    assert isinstance(unit.pre_activation, nn.Identity) and isinstance(unit.post_activation, nn.Identity)
    assert isinstance(unit.conv.input_quantizer, SignQuantizer)
    assert isinstance(unit.conv.kernel_quantizer, XnorWeight)
    assert unit.conv.padding == (0, 0)
    prelu = ConvSpec(binary=True, post_activation="prelu", prelu_per_channel=True).unit(8, 16, 3)
    assert isinstance(prelu.post_activation, nn.PReLU) and prelu.post_activation.weight.shape == (16,)
    leaky = ConvSpec(binary=True, post_activation="leakyrelu", leaky_slope=0.2).unit(8, 16, 3)
    assert leaky.post_activation.negative_slope == 0.2
    # forward = post(conv(sign(bn(x))))
    x = torch.randn(2, 8, 5, 5)
    leaky.eval()
    w = leaky.conv.weight
    ref = F.leaky_relu(F.conv2d(_sign(leaky.bn(x)), w.abs().mean((1, 2, 3), keepdim=True) * _sign(w), padding=1), 0.2)
    assert torch.allclose(leaky(x), ref, atol=1e-5)


def test_quantizers_give_their_smooth_counterparts():
    """Progressive quantization asks each quantizer for its smooth counterpart: no fixed table."""
    unit = ConvSpec(binary=True, scale="learned").unit(4, 4, 3)
    alpha = unit.conv.kernel_quantizer.alpha
    assert smooth_quantizers(unit, "tanh", lam=2.0) == 2
    assert isinstance(unit.conv.input_quantizer, SmoothSign) and unit.conv.input_quantizer.lam == 2.0
    assert isinstance(unit.conv.kernel_quantizer, LearnedScale) and unit.conv.kernel_quantizer.alpha is alpha
    assert isinstance(unit.conv.kernel_quantizer.sign, SmoothSign) and unit.conv.kernel_quantizer.sign.kind == "tanh"
    xnor = ConvSpec(binary=True).unit(4, 4, 3)
    smooth_quantizers(xnor, "sigmoid")
    assert isinstance(xnor.conv.kernel_quantizer, XnorWeight) and isinstance(xnor.conv.kernel_quantizer.sign, SmoothSign)
    with pytest.raises(ValueError):
        smooth_quantizers(ConvSpec().unit(4, 4, 3), "cubic")

    class Ternary(Quantizer):  # a plugin's quantizer without a smooth counterpart says so
        def quantize(self, x):
            return torch.sign(x)

    with pytest.raises(ValueError, match="no smooth counterpart"):
        Ternary().smooth("tanh")
    with pytest.raises(KeyError):
        ConvSpec(post_activation="swishy")


def test_set_quantizers_enabled_toggles_kernel_only():
    model = nn.Sequential(ConvSpec().unit(4, 4, 3), ConvSpec().unit(4, 4, 1))
    assert set_quantizers_enabled(model, "kernel", False) == 2
    conv = model[0].conv
    assert not conv.kernel_quantizer.enabled and conv.input_quantizer.enabled
    x = torch.randn(1, 4, 6, 6)
    assert torch.allclose(conv(x), F.conv2d(_sign(x), conv.weight, padding=1), atol=1e-5)
    set_quantizers_enabled(model, "kernel", True)
    assert all(u.conv.kernel_quantizer.enabled for u in model)
    with pytest.raises(ValueError):
        set_quantizers_enabled(model, "bias", True)
