"""Building blocks for real and binary networks: quantizers, quantized layers, blocks, models."""
from .alexnet import AlexNet
from .blocks import Bottleneck, skip_connection
from .hourglass import Hourglass, StackedHourglass, build_model
from .layers import ConvSpec, ConvUnit, QuantConv2d, QuantLinear, make_activation, real_projection
from .quantizers import (
    NoQuantizer,
    Quantizer,
    SignQuantizer,
    SmoothSign,
    XnorWeight,
    lambda_schedule,
    set_quantizer_lambda,
    set_quantizers_enabled,
    sign_ste,
    smooth_quantizers,
)
from .resnet import BasicBlock, CifarBottleneckResNet, ResNet18
from .structure import count_parameters

__all__ = [
    "Quantizer", "NoQuantizer", "SignQuantizer", "SmoothSign", "XnorWeight", "sign_ste",
    "lambda_schedule", "set_quantizer_lambda", "set_quantizers_enabled", "smooth_quantizers",
    "QuantConv2d", "QuantLinear", "ConvUnit", "ConvSpec", "make_activation", "real_projection",
    "Bottleneck", "skip_connection", "Hourglass", "StackedHourglass", "build_model",
    "AlexNet", "BasicBlock", "CifarBottleneckResNet", "ResNet18",
    "count_parameters",
]
