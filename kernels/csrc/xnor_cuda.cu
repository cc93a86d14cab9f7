// XNOR-popcount GEMM on CUDA cores (same packing and result as xnor_cpu.cpp):
// out[m, n] = scale[n] * (K - 2 * popcount(A[m] ^ B[n])). 16x16 outputs per block, both
// operands staged through shared memory 16 words at a time. Compile-checked only here
// (no GPU on the development machine); tests/test_kernels_cuda.py runs it where one exists.
#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <torch/library.h>
#include <cstdint>

namespace {
constexpr int T = 16;

__global__ void xnor_gemm_kernel(const unsigned long long* __restrict__ A, const unsigned long long* __restrict__ B,
                                 const float* __restrict__ scale, float* __restrict__ out,
                                 int64_t M, int64_t N, int64_t Kw, int64_t K) {
  __shared__ unsigned long long As[T][T + 1], Bs[T][T + 1];  // +1: no bank conflicts on the column reads
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t m = blockIdx.y * T + ty, n = blockIdx.x * T + tx;
  int count = 0;
  for (int64_t k0 = 0; k0 < Kw; k0 += T) {
    const int64_t am = blockIdx.y * T + ty, bn = blockIdx.x * T + ty;
    As[ty][tx] = (am < M && k0 + tx < Kw) ? A[am * Kw + k0 + tx] : 0ULL;
    Bs[ty][tx] = (bn < N && k0 + tx < Kw) ? B[bn * Kw + k0 + tx] : 0ULL;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < T; ++k) count += __popcll(As[ty][k] ^ Bs[tx][k]);
    __syncthreads();
  }
  if (m < M && n < N) out[m * N + n] = (float)(K - 2 * (int64_t)count) * (scale ? scale[n] : 1.0f);
}
}  // namespace

// ``stream``: torch.cuda.current_stream().cuda_stream, passed from Python so that this file
// needs no c10/cuda headers (a CPU build of torch, as on the development machine, lacks them).
at::Tensor xnor_gemm_cuda(at::Tensor A, at::Tensor B, int64_t K, c10::optional<at::Tensor> scale, int64_t stream) {
  TORCH_CHECK(A.is_cuda() && B.is_cuda(), "operands must be CUDA tensors");
  TORCH_CHECK(A.dtype() == at::kLong && B.dtype() == at::kLong && A.size(1) == B.size(1), "int64 words, same Kw");
  A = A.contiguous(); B = B.contiguous();
  const int64_t M = A.size(0), N = B.size(0), Kw = A.size(1);
  auto out = at::empty({M, N}, A.options().dtype(at::kFloat));
  at::Tensor s = scale && scale->defined() ? scale->contiguous().to(at::kFloat) : at::Tensor();
  dim3 block(T, T), grid((N + T - 1) / T, (M + T - 1) / T);
  xnor_gemm_kernel<<<grid, block, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const unsigned long long*>(A.data_ptr<int64_t>()),
      reinterpret_cast<const unsigned long long*>(B.data_ptr<int64_t>()),
      s.defined() ? s.data_ptr<float>() : nullptr, out.data_ptr<float>(), M, N, Kw, K);
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, "xnor_gemm_kernel launch failed: ", cudaGetErrorString(err));
  return out;
}

TORCH_LIBRARY(repro_xnor_cuda, m) { m.def("xnor_gemm", &xnor_gemm_cuda); }
