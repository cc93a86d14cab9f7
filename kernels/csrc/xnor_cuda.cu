// Binary GEMM on the GPU, same packing and result as xnor_cpu.cpp (kernels/packing.py: bit 1 =
// -1, bit 0 = +1, zero high bits in both operands):
//   out[m, n] = scale[n] * dot(A[m], B[n]) with dot = K - 2 * popcount(A[m] ^ B[n]).
//
// * pack_rows: float [R, K] -> int64 [R, Kw] sign words (a warp ballot per 32 signs).
// * xnor_gemm_cuda_core: popcount on CUDA cores, 16x16 outputs per block through shared memory.
// * xnor_gemm_tensor_core: the 1-bit tensor cores (mma.sync m16n8k256 .b1, sm_80+). It uses
//   .and.popc, since Hopper emulates .xor.popc at twice the cost: with a = popc(A[m]),
//   b = popc(B[n]) and c = popc(A[m] & B[n]), dot = K - 2a - 2b + 4c.
//
// Compile-checked here with nvcc (no GPU on the development machines);
// tests/test_kernels_cuda.py runs every kernel against float matmul where a GPU exists.
#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <torch/library.h>
#include <cstdint>

namespace {

// ---------------------------------------------------------------- packing
// A warp packs 32 consecutive signs of a row into one u32 with a ballot (coalesced reads); the
// int64 word w of a row is u32s 2w (bits 0-31) and 2w + 1 (little-endian).
__global__ void pack_rows_kernel(const float* __restrict__ x, uint32_t* __restrict__ out, int64_t R, int64_t K, int64_t K32) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // blockDim.x is a multiple of 32
  const int64_t r = i / (K32 * 32), j = i % (K32 * 32);
  const bool negative = r < R && j < K && x[r * K + j] < 0.0f;
  const uint32_t bits = __ballot_sync(0xffffffffu, negative);
  if (threadIdx.x % 32 == 0 && r < R) out[r * K32 + j / 32] = bits;
}

__global__ void row_popcount_kernel(const unsigned long long* __restrict__ x, int* __restrict__ out, int64_t R, int64_t Kw) {
  const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= R) return;
  int count = 0;
  for (int64_t w = 0; w < Kw; ++w) count += __popcll(x[r * Kw + w]);
  out[r] = count;
}

// ---------------------------------------------------------------- CUDA cores
constexpr int T = 16;

__global__ void xnor_gemm_cuda_core_kernel(const unsigned long long* __restrict__ A, const unsigned long long* __restrict__ B,
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

// ---------------------------------------------------------------- tensor cores
// A block computes 128 (M) x 64 (N) outputs with 4 warps as 2 x 2; a warp owns 64 x 32 = 4 x 4
// mma tiles of 16 x 8. K advances 512 bits (16 u32, two mma k-steps) per shared-memory stage.
constexpr int TC_BM = 128, TC_BN = 64, TC_WARPS = 4, TC_CHUNK = 16;
constexpr int TC_STRIDE = TC_CHUNK + 4;  // u32 per shared row: 20 puts the 8 rows of a fragment read on distinct banks
constexpr int TC_WORDS = TC_CHUNK / 2;   // int64 words per stage: the host pads Kw to a multiple of this

__device__ __forceinline__ void mma_b1_and_popc(int (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__global__ void __launch_bounds__(TC_WARPS * 32)
xnor_gemm_tensor_core_kernel(const uint32_t* __restrict__ A, const uint32_t* __restrict__ B,
                             const int* __restrict__ pop_a, const int* __restrict__ pop_b,
                             const float* __restrict__ scale, float* __restrict__ out,
                             int64_t M, int64_t N, int64_t K32, int64_t K) {
  __shared__ __align__(16) uint32_t As[TC_BM][TC_STRIDE];
  __shared__ __align__(16) uint32_t Bs[TC_BN][TC_STRIDE];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;  // the PTX fragment layout's groupID, threadID_in_group
  const int warp_m = (warp / 2) * 64, warp_n = (warp % 2) * 32;
  const int64_t block_m = (int64_t)blockIdx.y * TC_BM, block_n = (int64_t)blockIdx.x * TC_BN;
  int acc[4][4][4] = {};

  for (int64_t k0 = 0; k0 < K32; k0 += TC_CHUNK) {
    // Stage the chunk: rows of 4 uint4 (16 u32); rows past M or N are zeros.
    for (int i = threadIdx.x; i < TC_BM * 4; i += TC_WARPS * 32) {
      const int r = i / 4, c = (i % 4) * 4;
      const int64_t gm = block_m + r;
      *reinterpret_cast<uint4*>(&As[r][c]) =
          gm < M ? *reinterpret_cast<const uint4*>(A + gm * K32 + k0 + c) : make_uint4(0, 0, 0, 0);
    }
    for (int i = threadIdx.x; i < TC_BN * 4; i += TC_WARPS * 32) {
      const int r = i / 4, c = (i % 4) * 4;
      const int64_t gn = block_n + r;
      *reinterpret_cast<uint4*>(&Bs[r][c]) =
          gn < N ? *reinterpret_cast<const uint4*>(B + gn * K32 + k0 + c) : make_uint4(0, 0, 0, 0);
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < TC_CHUNK; ks += 8) {  // one m16n8k256 step = 8 u32 of K
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int r = warp_m + mi * 16 + group;
        a[mi][0] = As[r][ks + quad];
        a[mi][1] = As[r + 8][ks + quad];
        a[mi][2] = As[r][ks + quad + 4];
        a[mi][3] = As[r + 8][ks + quad + 4];
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int r = warp_n + ni * 8 + group;
        b[ni][0] = Bs[r][ks + quad];
        b[ni][1] = Bs[r][ks + quad + 4];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_b1_and_popc(acc[mi][ni], a[mi], b[ni]);
    }
    __syncthreads();
  }

  // Accumulator layout: c0, c1 at (group, 2 quad + {0, 1}); c2, c3 at (group + 8, ...).
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = block_m + warp_m + mi * 16 + group + (e / 2) * 8;
        const int64_t n = block_n + warp_n + ni * 8 + quad * 2 + (e % 2);
        if (m < M && n < N) {
          const int64_t dot = K - 2 * (int64_t)pop_a[m] - 2 * (int64_t)pop_b[n] + 4 * (int64_t)acc[mi][ni][e];
          out[m * N + n] = (float)dot * (scale ? scale[n] : 1.0f);
        }
      }
}

cudaStream_t as_stream(int64_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, what, " launch failed: ", cudaGetErrorString(err));
}

void check_operands(const at::Tensor& A, const at::Tensor& B) {
  TORCH_CHECK(A.is_cuda() && B.is_cuda(), "operands must be CUDA tensors");
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2, "operands must be 2-d [rows, words]");
  TORCH_CHECK(A.dtype() == at::kLong && B.dtype() == at::kLong && A.size(1) == B.size(1), "int64 words, same Kw");
}

// Contiguous and 16-byte aligned (the tensor-core kernel reads uint4); a fresh copy otherwise.
at::Tensor aligned_rows(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 ? c.clone() : c;
}

at::Tensor scale_or_undefined(const c10::optional<at::Tensor>& scale) {
  return scale && scale->defined() ? scale->contiguous().to(at::kFloat) : at::Tensor();
}

}  // namespace

// ``stream``: torch.cuda.current_stream().cuda_stream, passed from Python so that this file
// needs no c10/cuda headers (a CPU build of torch, as on the development machines, lacks them).
at::Tensor pack_rows_cuda(at::Tensor x, int64_t stream) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 2, "x must be a 2-d CUDA tensor");
  x = x.contiguous().to(at::kFloat);
  const int64_t R = x.size(0), K = x.size(1), Kw = (K + 63) / 64;
  auto out = at::empty({R, Kw}, x.options().dtype(at::kLong));
  const int64_t n = R * Kw * 64;  // one thread a bit, padding bits included
  if (n == 0) return out;
  pack_rows_kernel<<<(n + 255) / 256, 256, 0, as_stream(stream)>>>(
      x.data_ptr<float>(), reinterpret_cast<uint32_t*>(out.data_ptr<int64_t>()), R, K, Kw * 2);
  check_launch("pack_rows_kernel");
  return out;
}

at::Tensor xnor_gemm_cuda_core(at::Tensor A, at::Tensor B, int64_t K, c10::optional<at::Tensor> scale, int64_t stream) {
  check_operands(A, B);
  A = A.contiguous(); B = B.contiguous();
  const int64_t M = A.size(0), N = B.size(0), Kw = A.size(1);
  auto out = at::empty({M, N}, A.options().dtype(at::kFloat));
  if (M == 0 || N == 0) return out;
  at::Tensor s = scale_or_undefined(scale);
  dim3 block(T, T), grid((N + T - 1) / T, (M + T - 1) / T);
  xnor_gemm_cuda_core_kernel<<<grid, block, 0, as_stream(stream)>>>(
      reinterpret_cast<const unsigned long long*>(A.data_ptr<int64_t>()),
      reinterpret_cast<const unsigned long long*>(B.data_ptr<int64_t>()),
      s.defined() ? s.data_ptr<float>() : nullptr, out.data_ptr<float>(), M, N, Kw, K);
  check_launch("xnor_gemm_cuda_core_kernel");
  return out;
}

at::Tensor xnor_gemm_tensor_core(at::Tensor A, at::Tensor B, int64_t K, c10::optional<at::Tensor> scale, int64_t stream) {
  check_operands(A, B);
  // Whole stages of 512 bits and 16-byte aligned rows: pad the words with zeros (the packing's
  // padding rule: zero bits in both operands add nothing to popc(a), popc(b) or popc(a & b)).
  const int64_t pad = (TC_WORDS - A.size(1) % TC_WORDS) % TC_WORDS;
  A = pad ? at::constant_pad_nd(A, {0, pad}, 0) : aligned_rows(A);
  B = pad ? at::constant_pad_nd(B, {0, pad}, 0) : aligned_rows(B);
  const int64_t M = A.size(0), N = B.size(0), K32 = A.size(1) * 2;
  auto out = at::empty({M, N}, A.options().dtype(at::kFloat));
  if (M == 0 || N == 0) return out;
  auto pop_a = at::empty({M}, A.options().dtype(at::kInt)), pop_b = at::empty({N}, A.options().dtype(at::kInt));
  row_popcount_kernel<<<(M + 255) / 256, 256, 0, as_stream(stream)>>>(
      reinterpret_cast<const unsigned long long*>(A.data_ptr<int64_t>()), pop_a.data_ptr<int>(), M, A.size(1));
  row_popcount_kernel<<<(N + 255) / 256, 256, 0, as_stream(stream)>>>(
      reinterpret_cast<const unsigned long long*>(B.data_ptr<int64_t>()), pop_b.data_ptr<int>(), N, B.size(1));
  check_launch("row_popcount_kernel");
  at::Tensor s = scale_or_undefined(scale);
  dim3 grid((N + TC_BN - 1) / TC_BN, (M + TC_BM - 1) / TC_BM);
  xnor_gemm_tensor_core_kernel<<<grid, TC_WARPS * 32, 0, as_stream(stream)>>>(
      reinterpret_cast<const uint32_t*>(A.data_ptr<int64_t>()), reinterpret_cast<const uint32_t*>(B.data_ptr<int64_t>()),
      pop_a.data_ptr<int>(), pop_b.data_ptr<int>(), s.defined() ? s.data_ptr<float>() : nullptr, out.data_ptr<float>(),
      M, N, K32, K);
  check_launch("xnor_gemm_tensor_core_kernel");
  return out;
}

TORCH_LIBRARY(repro_xnor_cuda, m) {
  m.def("pack_rows", &pack_rows_cuda);
  m.def("xnor_gemm_cuda_core", &xnor_gemm_cuda_core);
  m.def("xnor_gemm_tensor_core", &xnor_gemm_tensor_core);
}
