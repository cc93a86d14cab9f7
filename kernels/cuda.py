"""CUDA-core XNOR-popcount GEMM (``csrc/xnor_cuda.cu``), JIT-built at first use where a GPU
and nvcc exist. Not benchmarked yet: ``repro kernels bench --device cuda`` says so. The 1-bit
tensor-core kernel (mma .b1) of the issue is not written."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

_SOURCE = Path(__file__).parent / "csrc" / "xnor_cuda.cu"
_loaded: dict = {}


def unavailable_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    from torch.utils.cpp_extension import CUDA_HOME
    if CUDA_HOME is None:
        return "no CUDA toolkit (nvcc) found"
    return None


def xnor_gemm(a: torch.Tensor, b: torch.Tensor, k: int, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Packed int64 ``a [M, Kw]``, ``b [N, Kw]`` on the GPU -> float32 ``[M, N]`` (see kernels.ops)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"CUDA kernels unavailable: {reason}")
    if "ops" not in _loaded:
        from torch.utils import cpp_extension
        digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:10]
        cpp_extension.load(name=f"repro_xnor_cuda_{digest}", sources=[str(_SOURCE)], is_python_module=False,
                           extra_cuda_cflags=["-O3"], verbose=False)
        _loaded["ops"] = torch.ops.repro_xnor_cuda
    return _loaded["ops"].xnor_gemm(a, b, k, scale, torch.cuda.current_stream().cuda_stream)
