"""Binary GEMM on the GPU (``csrc/xnor_cuda.cu``), JIT-built at first use where a GPU and nvcc
exist: sign packing, a CUDA-core popcount GEMM and a 1-bit tensor-core GEMM (mma .b1 .and.popc,
compute capability 8.0 and later). Same packing and results as the CPU kernels (repro_kernels.ops)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

_SOURCE = Path(__file__).parent / "csrc" / "xnor_cuda.cu"
_loaded: dict = {}
IMPLS = ("tensor_core", "cuda_core")


def unavailable_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    from torch.utils.cpp_extension import CUDA_HOME
    if CUDA_HOME is None:
        return "no CUDA toolkit (nvcc) found"
    return None


def tensor_core_unavailable_reason() -> str | None:
    reason = unavailable_reason()
    if reason is None and torch.cuda.get_device_capability() < (8, 0):
        major, minor = torch.cuda.get_device_capability()
        reason = f"the 1-bit tensor-core mma needs compute capability 8.0+, this GPU has {major}.{minor}"
    return reason


def _ops():
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"CUDA kernels unavailable: {reason}")
    if "ops" not in _loaded:
        from torch.utils import cpp_extension
        digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:10]
        cpp_extension.load(name=f"repro_xnor_cuda_{digest}", sources=[str(_SOURCE)], is_python_module=False,
                           extra_cuda_cflags=["-O3"], verbose=False)
        _loaded["ops"] = torch.ops.repro_xnor_cuda
    return _loaded["ops"]


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def pack_rows(x: torch.Tensor) -> torch.Tensor:
    """Signs of float ``x [R, K]`` on the GPU -> int64 ``[R, ceil(K/64)]`` (repro_kernels.packing's rule)."""
    return _ops().pack_rows(x, _stream())


def xnor_gemm(a: torch.Tensor, b: torch.Tensor, k: int, scale: torch.Tensor | None = None,
              impl: str = "tensor_core") -> torch.Tensor:
    """Packed int64 ``a [M, Kw]``, ``b [N, Kw]`` on the GPU -> float32 ``[M, N]`` =
    ``scale[n] * (K - 2 popcount(a[m] ^ b[n]))``; ``impl``: ``tensor_core`` or ``cuda_core``."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl '{impl}': choose from {', '.join(IMPLS)}")
    if impl == "tensor_core" and (reason := tensor_core_unavailable_reason()):
        raise RuntimeError(f"tensor-core kernel unavailable: {reason}")
    op = _ops().xnor_gemm_tensor_core if impl == "tensor_core" else _ops().xnor_gemm_cuda_core
    return op(a, b, k, scale, _stream())
