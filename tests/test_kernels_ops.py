"""XNOR-popcount GEMM and packed binary conv against float matmul / conv2d of the +-1 values:
exact equality, at awkward sizes, for every compiled ISA path and the pure-torch fallback."""
import pytest
import torch
import torch.nn.functional as F

from repro.nn.layers import QuantConv2d
from repro_kernels import _build, ops, packing

IMPLS = ["auto", "avx512", "avx2", "popcnt", "portable", "torch"]


def signs(*shape, generator):
    return torch.where(torch.randn(*shape, generator=generator) >= 0, 1.0, -1.0)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def available(impl):
    """Every path this CPU runs is tested; the others skip, saying why."""
    if impl == "auto" or impl in ops.available_impls():
        return impl
    if ops.backend() == "torch":
        pytest.skip(f"no compiled kernels ({_build.fallback_reason()})")
    pytest.skip(f"this CPU cannot run the {impl} path (it runs {', '.join(ops.available_impls())})")


def test_packing_round_trip_and_padding_rule(gen):
    x = torch.randn(3, 130, generator=gen)
    x[0, 5] = 0.0  # sign(0) = +1 packs as bit 0
    packed = packing.pack_rows(x)
    assert packed.shape == (3, 3) and packed.dtype == torch.int64
    assert torch.equal(packing.unpack_signs(packed, 130), torch.where(x >= 0, 1.0, -1.0))
    assert packed[0, 0] >> 5 & 1 == 0
    assert torch.all(packed[:, 2] >> 2 == 0)  # the 62 unused bits of the last word are zero
    assert torch.equal(ops.pack_rows(x), packed)  # compiled packer == reference


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 63, 5), (33, 64, 1), (1, 200, 9), (65, 1152, 6), (5, 4097, 3),
                                     (109, 576, 17), (97, 130, 40)])  # AVX-512 tiles of 8 rows, panels of 16 columns, and remainders
def test_xnor_gemm_equals_float_matmul(gen, impl, m, k, n):
    available(impl)
    a, b = signs(m, k, generator=gen), signs(n, k, generator=gen)
    out = ops.xnor_gemm(ops.pack_rows(a), ops.pack_rows(b), k, impl=impl)
    assert torch.equal(out, a @ b.T)
    scale, bias = torch.rand(n, generator=gen), torch.randn(n, generator=gen)
    scaled = ops.xnor_gemm(ops.pack_rows(a), ops.pack_rows(b), k, scale, bias, impl=impl)
    torch.testing.assert_close(scaled, (a @ b.T) * scale + bias)


CONVS = [  # B, C, H, W, O, k, stride, pad
    (2, 37, 7, 5, 3, 3, 1, 1), (1, 128, 8, 8, 64, 3, 1, 1), (1, 70, 9, 9, 1, 3, 2, 1),
    (1, 5, 6, 6, 7, 1, 1, 0), (3, 64, 5, 4, 2, 3, 1, 1), (1, 3, 11, 11, 4, 5, 2, 2), (1, 1, 1, 1, 1, 3, 1, 1),
    # output rows of 16 pixels and more (the AVX-512 conv's one-row panels), strides 1 and 2
    (2, 70, 5, 37, 9, 3, 1, 1), (1, 64, 40, 40, 16, 3, 2, 1), (1, 3, 41, 41, 5, 5, 2, 2),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("geometry", CONVS)
def test_binary_conv2d_equals_float_conv_with_zero_padding(gen, impl, geometry):
    available(impl)
    b, c, h, w, o, k, stride, pad = geometry
    x, weight = torch.randn(b, c, h, w, generator=gen), torch.randn(o, c, k, k, generator=gen)
    x[0, 0, 0, 0] = 0.0
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0), torch.where(weight >= 0, 1.0, -1.0), stride=stride, padding=pad)
    out = ops.binary_conv2d(x, ops.PackedConvWeight.from_weight(weight, stride, pad), impl=impl)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("impl", [i for i in IMPLS if i not in ("portable", "torch")])
@pytest.mark.parametrize("geometry", [(3, 64, 5, 4, 19, 3, 1, 1), (2, 70, 9, 9, 33, 3, 1, 1), (4, 8, 1, 1, 16, 3, 1, 1)])
def test_scaled_conv_is_bit_exact_with_the_portable_path(gen, impl, geometry):
    """Scale and bias as well, with tiles of pixels crossing images (P = 20, 81, 1; stride 1,
    'same' padding, so P = h * w): the vector epilogues round exactly as the scalar one does."""
    available(impl)
    b, c, h, w, o, k, stride, pad = geometry
    x, weight = torch.randn(b, c, h, w, generator=gen), torch.randn(o, c, k, k, generator=gen)
    packed = ops.PackedConvWeight.from_weight(weight, stride, pad, scale=torch.rand(o, generator=gen),
                                              bias=torch.randn(o, generator=gen))
    expected = ops.binary_conv2d(x, packed, impl="portable")
    assert torch.equal(ops.binary_conv2d(x, packed, impl=impl), expected)
    # the GEMM's own NCHW output (`pixels`), which the AVX-512 conv does not go through
    cols, (index, corr, _) = ops.im2col_packed(ops.pack_channels(x), k, k, stride, pad), packed.correction(h, w)
    gemm = ops.xnor_gemm(cols, packed.bits, packed.k, packed.scale, packed.bias, index, corr, h * w, impl)
    assert torch.equal(gemm.view_as(expected), expected)


def test_matches_the_project_binary_layer(gen):
    """QuantConv2d(sign, xnor_weight): quantized before zero padding; scale = mean |W| per channel."""
    layer = QuantConv2d(40, 12, 3, padding=1, input_quantizer="sign", kernel_quantizer="xnor_weight").eval()
    x = torch.randn(2, 40, 9, 7, generator=gen)
    with torch.no_grad():
        expected = layer(x)
        alpha = layer.weight.abs().mean(dim=(1, 2, 3))
    out = ops.binary_conv2d(x, ops.PackedConvWeight.from_weight(layer.weight.detach(), 1, 1, scale=alpha))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # The integers before scaling are exact.
    assert torch.equal(torch.round(out / alpha.view(1, -1, 1, 1)), torch.round(expected / alpha.view(1, -1, 1, 1)))


def test_folded_batch_norm_threshold(gen):
    """sign(BN(x)) as a per-channel threshold, a negative BN scale flipping the comparison."""
    bn = torch.nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5, -0.1, 3.0, 1.0]))
        bn.bias.copy_(torch.randn(6, generator=gen))
        bn.running_mean.copy_(torch.randn(6, generator=gen))
        bn.running_var.copy_(torch.rand(6, generator=gen) + 0.5)
    x = torch.randn(2, 6, 5, 5, generator=gen)
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    threshold = (bn.running_mean - bn.bias / a).detach()
    flip = (a < 0).to(torch.uint8)
    with torch.no_grad():
        expected = packing.pack_channels(bn(x))
    assert torch.equal(ops.pack_channels(x, threshold, flip), expected)
    assert torch.equal(packing.pack_channels(x, threshold, flip), expected)


def test_fallback_is_forced_cleanly(monkeypatch, capsys, gen):
    monkeypatch.setenv("REPRO_KERNELS", "torch")
    monkeypatch.setattr(_build, "_state", {})
    assert ops.backend() == "torch"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pure-torch path" in err and "REPRO_KERNELS=torch" in err
    a, b = signs(3, 100, generator=gen), signs(2, 100, generator=gen)
    assert torch.equal(ops.xnor_gemm(ops.pack_rows(a), ops.pack_rows(b), 100), a @ b.T)


@pytest.mark.parametrize("kernel_quantizer, scale", [("bnn_weight", None), ("xnor_weight", None),
                                                     ("xnor_weight", "learned"), ("bnn_weight", "analytic")])
def test_every_weight_scale_is_packed_from_its_quantizer(gen, kernel_quantizer, scale):
    """The packer asks the kernel quantizer for its scale (BNN 1, XNOR-Net mean |W|, a learned
    alpha): no kind of binary unit is silently left as float."""
    from repro.nn import ConvSpec
    from repro_kernels.packed import PackedConvUnit, pack_model

    unit = ConvSpec(binary=True, kernel_quantizer=kernel_quantizer, scale=scale, post_activation="prelu").unit(70, 16, 3)
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        unit.bn.running_mean.copy_(torch.randn(70, generator=gen))
        unit.bn.running_var.copy_(torch.rand(70, generator=gen) + 0.5)
    model = torch.nn.Sequential(unit).eval()
    x = torch.randn(2, 70, 9, 9, generator=gen)
    with torch.no_grad():
        expected = model(x)
        assert pack_model(model) == 1 and isinstance(model[0], PackedConvUnit)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def test_a_plugin_quantizer_is_packed_when_it_says_it_is_scale_times_sign(gen):
    from repro.nn import ConvSpec
    from repro.nn.quantizers import Quantizer, sign_ste
    from repro_kernels.packed import pack_model

    class HalfSign(Quantizer):  # a plugin's kernel quantizer: 0.5 * sign(W)
        binarizes = True

        def quantize(self, w):
            return 0.5 * sign_ste(w)

        def weight_scale(self, weight):
            return torch.full((weight.shape[0],), 0.5)

    unit = ConvSpec(binary=True).unit(8, 8, 3).eval()
    unit.conv.kernel_quantizer = HalfSign()
    model = torch.nn.Sequential(unit).eval()
    x = torch.randn(1, 8, 5, 5, generator=gen)
    with torch.no_grad():
        expected = model(x)
        assert pack_model(model) == 1
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    unit = ConvSpec(binary=True).unit(8, 8, 3).eval()
    unit.conv.kernel_quantizer = type("Opaque", (Quantizer,), {"quantize": lambda self, w: w.tanh()})()
    assert pack_model(torch.nn.Sequential(unit)) == 0  # not scale * sign: stays as it is
