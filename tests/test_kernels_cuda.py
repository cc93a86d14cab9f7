"""The CUDA-core XNOR GEMM against float matmul of the +-1 values; skipped without a GPU."""
import pytest
import torch

from kernels import cuda, packing

reason = cuda.unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 63, 5), (33, 1152, 17), (128, 4097, 64)])
def test_cuda_xnor_gemm_equals_float_matmul(m, k, n):
    g = torch.Generator().manual_seed(0)
    a = torch.where(torch.randn(m, k, generator=g) >= 0, 1.0, -1.0)
    b = torch.where(torch.randn(n, k, generator=g) >= 0, 1.0, -1.0)
    scale = torch.rand(n, generator=g)
    out = cuda.xnor_gemm(packing.pack_rows(a).cuda(), packing.pack_rows(b).cuda(), k, scale.cuda())
    torch.testing.assert_close(out.cpu(), (a @ b.T) * scale)
    assert torch.equal(cuda.xnor_gemm(packing.pack_rows(a).cuda(), packing.pack_rows(b).cuda(), k).cpu(), a @ b.T)
