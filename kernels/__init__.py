"""Binary kernels: bit packing, XNOR-popcount GEMM and binary conv2d on packed data, packed
inference of trained binary models, and benchmarks against float32 BLAS (see README "Kernels")."""
from .ops import PackedConvWeight, backend, binary_conv2d, im2col_packed, pack_channels, pack_rows, xnor_gemm
from .packing import pack_bits, pack_conv_weight, unpack_signs, words

__all__ = ["PackedConvWeight", "backend", "binary_conv2d", "im2col_packed", "pack_channels", "pack_rows",
           "xnor_gemm", "pack_bits", "pack_conv_weight", "unpack_signs", "words"]
