"""Quantizers: modules a layer applies to its input or its kernel before the real op (larq style).

Conventions of the project (tests pin both):

* ``sign(x) = +1 if x >= 0 else -1``. Outputs are strictly +-1, so they can be bit-packed.
  The authors' training code gives sign(0) = 0; we do not. Quantization happens before the
  convolution, so the conv's zero padding still contributes 0 at training time: a packed
  inference kernel must reproduce that (pad with 0, not with -1) to match these layers.
* Straight-through estimator, clipped: the gradient passes where ``|x| < 1`` and is zero where
  ``|x| >= 1`` (so ``|x| == 1`` blocks it). This is what the XNOR-Net and bnn.torch code does
  (``grad[input >= 1] = 0; grad[input <= -1] = 0``).

Every quantizer has ``enabled``: when False it is the identity. Reverse-order initialization
(Bulat et al. 2019) trains stage 1 with binary activations and real weights, then enables
weight binarization for stage 2 (see :func:`set_quantizers_enabled`).

A quantizer also says what the rest of the project needs to know of it, so a plugin's own
quantizer works everywhere: :meth:`Quantizer.smooth` gives its smooth counterpart (progressive
quantization), :attr:`Quantizer.hard_sign` and :meth:`Quantizer.weight_scale` tell the packed
kernels whether and how it is ``scale * sign``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import QUANTIZERS

STE_CLIP = 1.0


class _SignSTE(torch.autograd.Function):
    # Arithmetic on a boolean mask instead of torch.where over two filled tensors, and the STE
    # mask saved instead of x: the same values, ~3x faster on the CPU (where is slow there).
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x.abs() < STE_CLIP)
        return (x >= 0).to(x.dtype).mul_(2).sub_(1)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (inside,) = ctx.saved_tensors
        return grad_output * inside


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """+-1 forward (sign(0) = +1), clipped straight-through backward (passes where |x| < 1)."""
    return _SignSTE.apply(x)


class Quantizer(nn.Module):
    """Base class. Subclasses implement :meth:`quantize`, and :meth:`smooth`,
    :attr:`hard_sign` and :meth:`weight_scale` where they apply.

    ``binarizes`` says whether the output is (a scaled) +-1 tensor once training is over; it is
    what parameter counting uses to tell binary weights from real ones.
    """

    binarizes = False

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def smooth(self, kind: str, lam: float = 1.0) -> Quantizer:
        """The smooth counterpart for progressive quantization (a quantizer that becomes this one
        as lambda grows to inf). Raises ValueError where there is none."""
        raise ValueError(f"quantizer {type(self).__name__} has no smooth counterpart for progressive quantization")

    @property
    def hard_sign(self) -> bool:
        """True when the forward is exactly sign(x) (+1 for x >= 0, else -1) now."""
        return False

    def weight_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        """When the forward of ``weight`` [Cout, ...] is exactly ``scale * sign(weight)`` with one
        scale per output channel: that scale [Cout] (what a packed kernel multiplies by); else None."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize(x) if self.enabled else x

    def extra_repr(self) -> str:
        return "" if self.enabled else "enabled=False"


@QUANTIZERS.register("none")
class NoQuantizer(Quantizer):
    """Identity: the layer stays real."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def smooth(self, kind: str, lam: float = 1.0) -> Quantizer:
        return self  # nothing to approximate


@QUANTIZERS.register("sign")
class SignQuantizer(Quantizer):
    """Binary activations (XNOR-Net / BNN): :func:`sign_ste`."""

    binarizes = True

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x)

    def smooth(self, kind: str, lam: float = 1.0) -> Quantizer:
        smooth = SmoothSign(kind, lam)
        smooth.enabled = self.enabled
        return smooth

    @property
    def hard_sign(self) -> bool:
        return self.enabled

    def weight_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        return torch.ones(weight.shape[0], dtype=weight.dtype, device=weight.device) if self.hard_sign else None


@QUANTIZERS.register("bnn_weight")
def bnn_weight() -> SignQuantizer:
    """BNN weights (Courbariaux et al. 2016): plain sign, clipped STE, no scale."""
    return SignQuantizer()


def _sigmoid_sign(z: torch.Tensor) -> torch.Tensor:
    return 2 * torch.sigmoid(z) - 1


def _softsign(z: torch.Tensor) -> torch.Tensor:
    return z / (1 + z.abs())


SMOOTH_SIGNS = {"sigmoid": _sigmoid_sign, "softsign": _softsign, "tanh": torch.tanh}


@QUANTIZERS.register("smooth_sign")
class SmoothSign(SignQuantizer):
    """Progressive quantization (Bulat et al. 2019, sec. 3.4): a smooth sign ``f(lam * x)``.

    kinds: ``sigmoid`` 2*sigmoid(lam x) - 1 (the paper's), ``softsign`` lam x / (1 + |lam x|) and
    ``tanh`` tanh(lam x) (conventions). ``lam`` is raised by a schedule during training
    (:func:`lambda_schedule`, :func:`set_quantizer_lambda`); at ``lam = math.inf`` the module is
    exactly :class:`SignQuantizer` (forward and clipped-STE backward), so training ends binary.
    ``lam`` is a plain attribute, not saved in the state_dict: the schedule sets it each epoch.
    """

    binarizes = True

    def __init__(self, kind: str = "sigmoid", lam: float = 1.0):
        super().__init__()
        if kind not in SMOOTH_SIGNS:
            raise ValueError(f"unknown smooth sign kind '{kind}'; choose from {', '.join(SMOOTH_SIGNS)}")
        self.kind = kind
        self.lam = float(lam)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if math.isinf(self.lam):
            return sign_ste(x)
        return SMOOTH_SIGNS[self.kind](self.lam * x)

    @property
    def hard_sign(self) -> bool:
        return self.enabled and math.isinf(self.lam)

    def extra_repr(self) -> str:
        return ", ".join(filter(None, [f"kind={self.kind}, lam={self.lam}", super().extra_repr()]))


class XnorWeight(Quantizer):
    """XNOR-Net weights: ``alpha * s(W)``, alpha per output channel = mean |W| over all other dims.

    ``s`` is any sign-like quantizer: :class:`SignQuantizer` (``"xnor_weight"``) or
    :class:`SmoothSign` (``"smooth_xnor_weight"``, progressive quantization of the weights).
    alpha is computed from W and NOT detached, so autograd gives XNOR-Net's gradient
    dL/dW_j = sign(W_j)/n * sum_i g_i sign(W_i) + g_j * alpha * 1{|W_j| < 1}
    (n = Cin*kh*kw, the sum over the output channel of W_j).
    Works for conv ([Cout, Cin, kh, kw]) and linear ([Cout, Cin]) weights.
    """

    binarizes = True

    def __init__(self, sign: Quantizer | None = None):
        super().__init__()
        self.sign = sign if sign is not None else SignQuantizer()

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        alpha = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        return alpha * self.sign(w)

    def smooth(self, kind: str, lam: float = 1.0) -> Quantizer:
        smooth = XnorWeight(self.sign.smooth(kind, lam))
        smooth.enabled = self.enabled
        return smooth

    def weight_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        inner = self.sign.weight_scale(weight) if self.enabled else None
        return None if inner is None else inner * weight.abs().flatten(1).mean(1)


@QUANTIZERS.register("xnor_weight")
def xnor_weight() -> XnorWeight:
    return XnorWeight(SignQuantizer())


@QUANTIZERS.register("smooth_xnor_weight")
def smooth_xnor_weight(kind: str = "sigmoid", lam: float = 1.0) -> XnorWeight:
    return XnorWeight(SmoothSign(kind, lam))


class LearnedScale(Quantizer):
    """``alpha * s(W)`` with alpha a trained per-output-channel parameter ([Cout, 1, 1, 1]).

    Bulat et al. 2019b (sec. 4.3) learn the weight scaling factor by back-propagation instead of
    XNOR-Net's analytic mean |W|. ``init`` is alpha's starting value: 1.0, as the authors'
    library (1adrianb/binary-networks-pytorch); the paper does not give it.
    """

    binarizes = True

    def __init__(self, channels: int, sign: Quantizer | None = None, init: float = 1.0):
        super().__init__()
        self.sign = sign if sign is not None else SignQuantizer()
        self.alpha = nn.Parameter(torch.full((channels, 1, 1, 1), float(init)))

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        return self.alpha.view(w.shape[0], *([1] * (w.dim() - 1))) * self.sign(w)

    def smooth(self, kind: str, lam: float = 1.0) -> Quantizer:
        smooth = LearnedScale(self.alpha.shape[0], self.sign.smooth(kind, lam))
        smooth.alpha, smooth.enabled = self.alpha, self.enabled  # the same trained parameter
        return smooth

    def weight_scale(self, weight: torch.Tensor) -> torch.Tensor | None:
        inner = self.sign.weight_scale(weight) if self.enabled else None
        return None if inner is None else inner * self.alpha.detach().flatten()


WEIGHT_SCALES = ("none", "analytic", "learned")


def with_weight_scale(quantizer: Quantizer, scale: str, channels: int) -> Quantizer:
    """The sign of a kernel quantizer with the scaling factor ``scale`` put in place of its own:
    ``none`` (BNN), ``analytic`` (XNOR-Net mean |W|) or ``learned`` (:class:`LearnedScale`)."""
    sign = quantizer.sign if isinstance(quantizer, (XnorWeight, LearnedScale)) else quantizer
    if not isinstance(sign, SignQuantizer):  # a SmoothSign is one too
        raise ValueError(f"a weight scale needs a sign-like kernel quantizer, got {type(quantizer).__name__}")
    if scale == "none":
        return sign
    if scale == "analytic":
        return XnorWeight(sign)
    if scale == "learned":
        return LearnedScale(channels, sign)
    raise ValueError(f"unknown weight scale '{scale}'; choose from {', '.join(WEIGHT_SCALES)}")


def smooth_quantizers(model: nn.Module, kind: str, lam: float = 1.0) -> int:
    """Replace the input and kernel quantizers of every quantized layer by their smooth
    counterparts (:meth:`Quantizer.smooth`), in place; returns how many were replaced."""
    count = 0
    for module in list(model.modules()):
        for role in QUANTIZER_ROLES:
            quantizer = getattr(module, f"{role}_quantizer", None)
            if isinstance(quantizer, Quantizer):
                setattr(module, f"{role}_quantizer", quantizer.smooth(kind, lam))
                count += 1
    return count


def set_quantizer_lambda(model: nn.Module, lam: float) -> int:
    """Set ``lam`` on every :class:`SmoothSign` in ``model``; returns how many were set."""
    smooth = [m for m in model.modules() if isinstance(m, SmoothSign)]
    for module in smooth:
        module.lam = float(lam)
    return len(smooth)


QUANTIZER_ROLES = ("input", "kernel")


def set_quantizers_enabled(model: nn.Module, role: str, enabled: bool) -> int:
    """Switch the ``input`` or ``kernel`` quantizers of every quantized layer on or off.

    Layers keep their quantizers as ``input_quantizer`` / ``kernel_quantizer`` attributes
    (QuantConv2d, QuantLinear). Returns how many quantizers were set.
    """
    if role not in QUANTIZER_ROLES:
        raise ValueError(f"role must be one of {QUANTIZER_ROLES}, got '{role}'")
    count = 0
    for module in model.modules():
        quantizer = getattr(module, f"{role}_quantizer", None)
        if isinstance(quantizer, Quantizer):
            quantizer.enabled = bool(enabled)
            count += 1
    return count


def lambda_schedule(epoch_fraction: float, start: float = 1.0, end: float = 100.0,
                    hard_from: float = 0.9) -> float:
    """Lambda for progressive quantization at ``epoch_fraction`` in [0, 1] of training.

    Geometric increase from ``start`` (at 0) towards ``end`` (reached as the fraction
    approaches ``hard_from``), then ``math.inf`` (true sign) from ``hard_from`` on.
    ASSUMPTION: Bulat et al. 2019 do not give the start and end values (lost from the text);
    start=1, end=100 and hard_from=0.9 are this project's defaults, not the paper's.
    """
    if not 0 < start <= end:
        raise ValueError(f"need 0 < start <= end, got start={start}, end={end}")
    if not 0 < hard_from <= 1:
        raise ValueError(f"hard_from must be in (0, 1], got {hard_from}")
    fraction = min(max(float(epoch_fraction), 0.0), 1.0)
    if fraction >= hard_from:
        return math.inf
    return start * (end / start) ** (fraction / hard_from)
