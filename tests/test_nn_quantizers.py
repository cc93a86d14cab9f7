import math

import pytest
import torch

from repro.nn import lambda_schedule, set_quantizer_lambda
from repro.nn.quantizers import SmoothSign, XnorWeight, sign_ste
from repro.registry import QUANTIZERS, Registry

POINTS = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])


def test_registry_build_duplicate_and_unknown():
    reg = Registry("thing")
    reg.register("a")(dict)
    assert reg.names() == ["a"] and reg.build("a", x=1) == {"x": 1}
    with pytest.raises(ValueError):
        reg.register("a")(list)
    with pytest.raises(KeyError, match="registered: a"):
        reg["b"]


def test_sign_forward_is_plus_minus_one_with_sign_zero_plus_one():
    out = QUANTIZERS.build("sign")(POINTS)
    assert out.tolist() == [-1, -1, -1, 1, 1, 1, 1]


def test_sign_backward_clipped_ste_blocks_abs_one_and_beyond():
    x = POINTS.clone().requires_grad_()
    grad = torch.arange(1.0, 8.0)
    QUANTIZERS.build("sign")(x).backward(grad)
    # passes only where |x| < 1: -0.5, 0, 0.5
    assert x.grad.tolist() == [0, 0, 3, 4, 5, 0, 0]


def test_bnn_weight_is_plain_sign():
    w = torch.tensor([[0.3, -0.2], [-3.0, 0.0]], requires_grad=True)
    q = QUANTIZERS.build("bnn_weight")(w)
    assert q.tolist() == [[1, -1], [-1, 1]]
    q.sum().backward()
    assert w.grad.tolist() == [[1, 1], [0, 1]]


def test_xnor_weight_scale_per_output_channel():
    w = torch.randn(4, 3, 3, 3)
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(QUANTIZERS.build("xnor_weight")(w), alpha * torch.where(w >= 0, 1.0, -1.0))
    lin = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert QUANTIZERS.build("xnor_weight")(lin).tolist() == [[2, -2], [0.5, 0.5]]


def test_xnor_weight_backward_matches_xnor_net_formula():
    torch.manual_seed(0)
    w = (torch.randn(3, 2, 3, 3) * 0.8).requires_grad_()
    g = torch.randn(3, 2, 3, 3)
    QUANTIZERS.build("xnor_weight")(w).backward(g)
    with torch.no_grad():
        n = w[0].numel()
        s = torch.where(w >= 0, 1.0, -1.0)
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        through_alpha = s / n * (g * s).sum(dim=(1, 2, 3), keepdim=True)
        through_sign = g * alpha * (w.abs() < 1).float()
    assert (w.abs() >= 1).any() and (w.abs() < 1).any()  # both STE cases exercised
    assert torch.allclose(w.grad, through_alpha + through_sign, atol=1e-6)


@pytest.mark.parametrize("kind,expected", [
    ("sigmoid", lambda z: 2 * torch.sigmoid(z) - 1),
    ("softsign", lambda z: z / (1 + z.abs())),
    ("tanh", torch.tanh),
])
def test_smooth_sign_values_and_derivative(kind, expected):
    lam = 3.0
    x = POINTS.clone().requires_grad_()
    out = SmoothSign(kind, lam)(x)
    assert torch.allclose(out, expected(lam * POINTS))
    out.sum().backward()
    derivative = {
        "sigmoid": lambda z: 2 * torch.sigmoid(z) * (1 - torch.sigmoid(z)),
        "softsign": lambda z: 1 / (1 + z.abs()) ** 2,
        "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    }[kind]
    assert torch.allclose(x.grad, lam * derivative(lam * POINTS))
    assert SmoothSign(kind, 1.0)(torch.tensor([0.0])).item() == 0.0


@pytest.mark.parametrize("kind", ["sigmoid", "softsign", "tanh"])
def test_smooth_sign_at_infinity_is_sign_forward_and_backward(kind):
    grad = torch.arange(1.0, 8.0)
    x_smooth, x_sign = POINTS.clone().requires_grad_(), POINTS.clone().requires_grad_()
    out_smooth = SmoothSign(kind, math.inf)(x_smooth)
    out_sign = sign_ste(x_sign)
    assert torch.equal(out_smooth, out_sign)
    out_smooth.backward(grad)
    out_sign.backward(grad)
    assert torch.equal(x_smooth.grad, x_sign.grad)


def test_smooth_xnor_weight_and_lambda_setter():
    q = QUANTIZERS.build("smooth_xnor_weight", kind="tanh", lam=2.0)
    assert isinstance(q, XnorWeight) and isinstance(q.sign, SmoothSign)
    w = torch.randn(5, 4)
    alpha = w.abs().mean(dim=1, keepdim=True)
    assert torch.allclose(q(w), alpha * torch.tanh(2.0 * w))
    assert set_quantizer_lambda(q, math.inf) == 1
    assert torch.allclose(q(w), QUANTIZERS.build("xnor_weight")(w))


@pytest.mark.parametrize("name", ["sign", "bnn_weight", "xnor_weight", "smooth_sign", "smooth_xnor_weight", "none"])
def test_disabled_quantizer_is_identity(name):
    q = QUANTIZERS.build(name)
    q.enabled = False
    w = torch.randn(3, 4, requires_grad=True)
    out = q(w)
    assert torch.equal(out, w)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_lambda_schedule_geometric_monotone_then_hard():
    fractions = [i / 100 for i in range(101)]
    values = [lambda_schedule(f, start=1.0, end=100.0, hard_from=0.9) for f in fractions]
    assert values[0] == 1.0
    assert all(b > a for a, b in zip(values, values[1:]) if not math.isinf(b))
    assert lambda_schedule(0.45, 1.0, 100.0, 0.9) == pytest.approx(10.0)  # geometric midpoint
    assert lambda_schedule(0.8999999, 1.0, 100.0, 0.9) == pytest.approx(100.0, rel=1e-4)
    assert all(math.isinf(v) for f, v in zip(fractions, values) if f >= 0.9)
    assert not any(math.isinf(v) for f, v in zip(fractions, values) if f < 0.9)
    assert lambda_schedule(0.99, hard_from=1.0) < math.inf and math.isinf(lambda_schedule(1.0, hard_from=1.0))
    with pytest.raises(ValueError):
        lambda_schedule(0.5, start=0.0)
