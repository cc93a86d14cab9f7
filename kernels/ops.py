"""XNOR-popcount GEMM and binary conv2d on packed data (CPU), compiled or pure torch.

``xnor_gemm(A, B, K)[m, n] = K - 2 * popcount(A[m] XOR B[n])`` = the dot product of the +-1
rows, an exact integer; optionally times ``scale[n]`` plus ``bias[n]``.

Binary conv = packed activations (NHWC words) -> packed im2col -> xnor_gemm. Zero padding: the
project's layers quantize BEFORE padding (repro/nn/quantizers.py), so a padded tap contributes
0, while the packed im2col fills it with word 0 (= +1). The kernel therefore subtracts, at the
border pixels only, the sum of the +-1 weights over that pixel's padded taps (an exact integer
correction, computed once per input size): results equal conv2d(sign(x), sign(w), padding=p).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import packing
from ._build import extension


def backend() -> str:
    """'avx512', 'avx2', 'popcnt' or 'portable' (compiled, chosen by CPUID) or 'torch' (fallback)."""
    ext = extension()
    return ext.cpu_impl() if ext is not None else "torch"


def available_impls() -> list[str]:
    """Every compiled path this CPU runs, fastest first (``impl=`` of :func:`xnor_gemm`), then 'torch'."""
    ext = extension()
    return (list(ext.cpu_impls()) if ext is not None else []) + ["torch"]


def pack_rows(x: torch.Tensor) -> torch.Tensor:
    ext = extension()
    if ext is None or x.dtype != torch.float32:
        return packing.pack_rows(x)
    m, k = x.shape
    return ext.pack_nchw(x.contiguous().view(m, k, 1, 1), None, None).view(m, -1)


def pack_channels(x: torch.Tensor, threshold: torch.Tensor | None = None, flip: torch.Tensor | None = None) -> torch.Tensor:
    ext = extension()
    if ext is None or x.dtype != torch.float32:
        return packing.pack_channels(x, threshold, flip)
    return ext.pack_nchw(x, threshold, flip)


def im2col_packed(xp: torch.Tensor, kh: int, kw: int, stride: int, pad: int) -> torch.Tensor:
    """Words ``[B, H, W, Cw]`` -> ``[B*Ho*Wo, kh*kw*Cw]``; padded taps are word 0 (+1)."""
    ext = extension()
    if ext is not None:
        return ext.im2col_packed(xp, kh, kw, stride, pad)
    b, h, w, cw = xp.shape
    padded = F.pad(xp, (0, 0, pad, pad, pad, pad))
    cols = padded.unfold(1, kh, stride).unfold(2, kw, stride)  # [B, Ho, Wo, Cw, kh, kw]
    return cols.permute(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * cw)


def xnor_gemm(a: torch.Tensor, b: torch.Tensor, k: int, scale: torch.Tensor | None = None,
              bias: torch.Tensor | None = None, pad_index: torch.Tensor | None = None,
              pad_corr: torch.Tensor | None = None, pixels: int = 0, impl: str = "auto") -> torch.Tensor:
    """Packed ``a [M, Kw]``, ``b [N, Kw]`` -> float32 ``[M, N]`` (or ``[M/pixels, N, pixels]``
    when ``pixels`` > 0: a conv's NCHW output), with the optional padding correction."""
    ext = extension()
    if ext is not None and impl != "torch":
        return ext.xnor_gemm(a, b, k, scale, bias, pad_index, pad_corr, pixels, impl)
    # Pure torch: unpack every bit to +-1 and multiply (exact while K < 2**24). Padding bits are
    # 0 in both operands, i.e. (+1)(+1): remove their count to get K - 2 popcount(a ^ b).
    bits = a.shape[1] * packing.WORD
    counts = packing.unpack_signs(a, bits) @ packing.unpack_signs(b, bits).T - (bits - k)
    if pad_index is not None:
        rows = torch.arange(counts.shape[0]) % (pixels or counts.shape[0])
        hit = pad_index.long()[rows]
        border = hit >= 0
        counts[border] -= pad_corr[hit[border]].float()
    if scale is not None:
        counts = counts * scale
    if bias is not None:
        counts = counts + bias
    if pixels:
        counts = counts.view(-1, pixels, counts.shape[1]).transpose(1, 2).contiguous()
    return counts


def padding_correction(tap_sums: torch.Tensor, height: int, width: int, stride: int, pad: int
                       ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """For each output pixel whose window reaches into the zero padding: the sum of the +-1
    weights over its padded taps, per output channel. ``tap_sums [O, kh, kw]`` = the +-1 weights
    summed over input channels. Returns (pad_index int32 [P], -1 inside; pad_corr int32 [nb, O])."""
    if pad == 0:
        return None, None
    o, kh, kw = tap_sums.shape
    outside = F.pad(torch.zeros(1, 1, height, width), (pad,) * 4, value=1.0)
    touched = F.conv2d(outside, torch.ones(1, 1, kh, kw), stride=stride).flatten() > 0
    corr = F.conv2d(outside.double(), tap_sums.unsqueeze(1).double(), stride=stride).view(o, -1)  # exact integers
    index = torch.full(touched.shape, -1, dtype=torch.int32)
    index[touched] = torch.arange(int(touched.sum()), dtype=torch.int32)
    return index, corr[:, touched].T.round().to(torch.int32).contiguous()


class PackedConvWeight:
    """A binary conv's weights packed once: sign bits ``[O, kh*kw*Cw]``, the +-1 weights summed
    over input channels per tap ``[O, kh, kw]`` (for the padding correction), scale and bias."""

    def __init__(self, bits: torch.Tensor, tap_sums: torch.Tensor, in_channels: int, stride: int = 1,
                 padding: int = 0, scale: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        self.bits, self.tap_sums = bits, tap_sums
        self.out_channels, self.kh, self.kw = tap_sums.shape
        self.in_channels, self.stride, self.padding = in_channels, stride, padding
        self.k = in_channels * self.kh * self.kw
        self.scale, self.bias = scale, bias
        self._corrections: dict[tuple[int, int], tuple] = {}

    @classmethod
    def from_weight(cls, weight: torch.Tensor, stride: int = 1, padding: int = 0,
                    scale: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> PackedConvWeight:
        tap_sums = torch.where(weight < 0, -1, 1).to(torch.int32).sum(1)
        return cls(packing.pack_conv_weight(weight), tap_sums, weight.shape[1], stride, padding, scale, bias)

    def correction(self, height: int, width: int):
        """(pad_index, pad_corr [nb, O], pad_corr channel-major [O, nb]) for an input size, cached."""
        key = (height, width)
        if key not in self._corrections:
            index, corr = padding_correction(self.tap_sums, height, width, self.stride, self.padding)
            self._corrections[key] = index, corr, None if corr is None else corr.T.contiguous()
        return self._corrections[key]


def binary_conv2d(x: torch.Tensor, weight: PackedConvWeight, threshold: torch.Tensor | None = None,
                  flip: torch.Tensor | None = None, impl: str = "auto") -> torch.Tensor:
    """``scale * conv2d(sign(x), sign(w), stride, padding) + bias`` on packed data, [B, O, Ho, Wo].

    ``x`` float [B, C, H, W] (or already packed int64 [B, H, W, Cw]); ``threshold``/``flip``:
    a batch norm folded into the sign (see :func:`pack_channels`).
    """
    packed = x if x.dtype == torch.int64 else pack_channels(x, threshold, flip)
    b, h, w, _ = packed.shape
    index, corr, corr_by_channel = weight.correction(h, w)
    ext = extension()
    if ext is not None and impl != "torch":  # AVX-512: im2col fused into the GEMM
        return ext.xnor_conv2d(packed, weight.bits, weight.k, weight.kh, weight.kw, weight.stride, weight.padding,
                               weight.scale, weight.bias, index, corr, corr_by_channel, impl)
    ho = (h + 2 * weight.padding - weight.kh) // weight.stride + 1
    wo = (w + 2 * weight.padding - weight.kw) // weight.stride + 1
    cols = im2col_packed(packed, weight.kh, weight.kw, weight.stride, weight.padding)
    out = xnor_gemm(cols, weight.bits, weight.k, weight.scale, weight.bias, index, corr, ho * wo, impl)
    return out.view(b, weight.out_channels, ho, wo)
