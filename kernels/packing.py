"""Bit packing of signs into 64-bit words along the reduction dimension.

Convention (the kernels' and the project's): ``sign(x) = +1 if x >= 0 else -1``; bit 1 = -1,
bit 0 = +1. The reduction dim of K signs becomes ``ceil(K / 64)`` int64 words, sign ``j`` in bit
``j % 64`` of word ``j // 64``.

Padding rule: the last word's unused high bits are 0 in BOTH operands (activations and weights),
so their XOR is 0 and they add nothing; the true K is passed to the GEMM, which returns
``K - 2 * popcount(a XOR b)``. For a conv, each tap (ky, kx) holds ``ceil(C / 64)`` words, so a
channel count that is not a multiple of 64 is padded per tap by the same rule.

These are the pure-torch packers (the reference, the fallback, and what weights use: they are
packed once). Activations use the compiled packer (kernels/ops.py) when it is available.
"""
from __future__ import annotations

import torch

WORD = 64
_SHIFTS = torch.arange(WORD, dtype=torch.int64)


def words(k: int) -> int:
    return (k + WORD - 1) // WORD


def pack_bits(negative: torch.Tensor) -> torch.Tensor:
    """Bool ``[..., K]`` (True = -1) -> int64 ``[..., ceil(K/64)]``, zero-padded high bits."""
    k = negative.shape[-1]
    padded = torch.zeros(*negative.shape[:-1], words(k) * WORD, dtype=torch.int64)
    padded[..., :k] = negative.to(torch.int64)
    # Distinct powers of two never carry, so an int64 sum is the exact bit pattern (bit 63 too).
    return (padded.view(*negative.shape[:-1], -1, WORD) << _SHIFTS).sum(-1)


def unpack_signs(packed: torch.Tensor, k: int) -> torch.Tensor:
    """int64 ``[..., Kw]`` -> float32 +-1 ``[..., k]`` (inverse of :func:`pack_bits` on signs)."""
    bits = (packed.unsqueeze(-1) >> _SHIFTS) & 1
    bits = bits.flatten(-2)[..., :k]
    return (1 - 2 * bits).to(torch.float32)


def pack_rows(x: torch.Tensor) -> torch.Tensor:
    """Signs of ``x [..., K]`` packed along the last dim."""
    return pack_bits(x < 0)


def pack_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """Signs of a conv weight ``[O, C, kh, kw]`` -> ``[O, kh * kw * ceil(C/64)]`` words, in the
    (ky, kx, channel word) order of the packed im2col."""
    o = weight.shape[0]
    return pack_bits(weight.permute(0, 2, 3, 1) < 0).reshape(o, -1)


def pack_channels(x: torch.Tensor, threshold: torch.Tensor | None = None,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Signs of activations ``[B, C, H, W]`` -> ``[B, H, W, ceil(C/64)]`` words (NHWC).

    With ``threshold`` (a batch norm folded in front of the sign), channel c is -1 where
    ``x < threshold[c]``, or ``x > threshold[c]`` where ``flip[c]`` (a negative BN scale).
    """
    x = x.permute(0, 2, 3, 1)
    if threshold is None:
        return pack_bits(x < 0)
    negative = torch.where(flip.bool() if flip is not None else torch.zeros_like(threshold, dtype=torch.bool),
                           x > threshold, x < threshold)
    return pack_bits(negative)
