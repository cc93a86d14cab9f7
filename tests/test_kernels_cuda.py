"""The GPU kernels against float matmul of the +-1 values: exact; skipped without a GPU."""
import pytest
import torch

from repro_kernels import cuda, packing

reason = cuda.unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")

# K not a multiple of 64 (or of the tensor-core kernel's 512-bit stage), M or N of 1, and sizes
# that leave partial 128 x 64 blocks.
SHAPES = [(1, 1, 1), (7, 63, 5), (33, 1152, 17), (128, 4097, 64), (300, 513, 129), (1, 8192, 1000)]


def _signs(rows: int, k: int, generator: torch.Generator) -> torch.Tensor:
    return torch.where(torch.randn(rows, k, generator=generator) >= 0, 1.0, -1.0)


@pytest.mark.parametrize("impl", cuda.IMPLS)
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_cuda_xnor_gemm_equals_float_matmul(impl, m, k, n):
    if impl == "tensor_core" and (why := cuda.tensor_core_unavailable_reason()):
        pytest.skip(why)
    g = torch.Generator().manual_seed(0)
    a, b = _signs(m, k, g), _signs(n, k, g)
    scale = torch.rand(n, generator=g)
    ap, bp = packing.pack_rows(a).cuda(), packing.pack_rows(b).cuda()
    exact = (a.double() @ b.double().T).float()
    assert torch.equal(cuda.xnor_gemm(ap, bp, k, impl=impl).cpu(), exact)
    torch.testing.assert_close(cuda.xnor_gemm(ap, bp, k, scale.cuda(), impl=impl).cpu(), exact * scale)


def test_cuda_tensor_core_reads_offset_views():
    """A row slice starts mid-allocation: the kernel must not assume 16-byte alignment."""
    if why := cuda.tensor_core_unavailable_reason():
        pytest.skip(why)
    g = torch.Generator().manual_seed(1)
    a, b = _signs(65, 1024, g), _signs(9, 1024, g)
    ap = packing.pack_rows(a).cuda()[1:]
    out = cuda.xnor_gemm(ap, packing.pack_rows(b).cuda(), 1024).cpu()
    assert torch.equal(out, a[1:] @ b.T)


@pytest.mark.parametrize("r, k", [(1, 1), (5, 64), (17, 130), (3, 4097)])
def test_cuda_pack_rows_equals_reference(r, k):
    x = torch.randn(r, k, generator=torch.Generator().manual_seed(2))
    x[0, 0] = 0.0  # sign(0) = +1
    assert torch.equal(cuda.pack_rows(x.cuda()).cpu(), packing.pack_rows(x))
