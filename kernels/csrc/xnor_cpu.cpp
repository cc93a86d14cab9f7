// XNOR-popcount kernels for the CPU (see kernels/README in the project README, "Kernels").
//
// Bit convention: bit 1 = -1, bit 0 = +1 (so sign(0) = +1 packs as 0). A row of K signs is
// packed into ceil(K/64) uint64 words, sign j in bit j%64 of word j/64; the unused high bits
// of the last word are 0 in BOTH operands, so their XOR is 0 and they add nothing.
// dot(a, b) over K signs = K - 2 * popcount(a XOR b).
//
// The ISA is chosen at run time (CPUID): AVX-512 VPOPCNTDQ, else AVX2 nibble-LUT popcount, else
// scalar POPCNT, else portable. Threads come from torch's own pool (at::parallel_for), never a second OpenMP.
#include <ATen/ATen.h>  // not torch/extension.h: half the headers, half the first build
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <cstdint>
#include <immintrin.h>
#include <vector>

namespace {

using u64 = uint64_t;

struct Epilogue {
  int64_t K;             // true reduction length (bits)
  const float* scale;    // [N] or null
  const float* bias;     // [N] or null
  const int32_t* pad_index;  // [P] row into pad_corr, -1 for interior pixels; or null
  const int32_t* pad_corr;   // [*, N] sum of the +-1 weights over the padded taps
  int64_t N, P;          // P > 0: output is [M/P, N, P] (NCHW); P == 0: [M, N]
  float* out;
  // Row m, columns n .. n+count-1 from their popcounts; one division per row, not per element.
  inline void store(int64_t m, int64_t n, const int64_t* popc, int count) const {
    const int64_t img = P ? m / P : 0, p = P ? m - img * P : m, stride = P ? P : 1;
    const int32_t r = pad_index ? pad_index[p] : -1;
    float* o = P ? out + img * N * P + p : out + m * N;
    for (int c = 0; c < count; ++c) {
      int64_t v = K - 2 * popc[c];
      if (r >= 0) v -= pad_corr[(int64_t)r * N + n + c];
      float y = (float)v;
      if (scale) y *= scale[n + c];
      if (bias) y += bias[n + c];
      o[(n + c) * stride] = y;
    }
  }
};

constexpr int64_t MB = 64;  // rows of A per task: the A block stays in L1/L2 while B streams by

// Scalar kernels, one per ISA: a target attribute does not reach into lambdas, so each
// parallel_for task calls a block function compiled for its ISA.
#define SCALAR_BLOCK(NAME, ATTR)                                                                 \
  ATTR void NAME(const u64* A, const u64* B, int64_t m0, int64_t m1, int64_t N, int64_t Kw,     \
                 const Epilogue& ep) {                                                           \
    for (int64_t n = 0; n < N; ++n)                                                              \
      for (int64_t m = m0; m < m1; ++m) {                                                        \
        const u64* a = A + m * Kw; const u64* b = B + n * Kw; int64_t c = 0;                     \
        for (int64_t k = 0; k < Kw; ++k) c += __builtin_popcountll(a[k] ^ b[k]);                 \
        ep.store(m, n, &c, 1);                                                                   \
      }                                                                                          \
  }
SCALAR_BLOCK(block_popcnt, __attribute__((target("popcnt"))))
SCALAR_BLOCK(block_portable, )

using BlockFn = void (*)(const u64*, const u64*, int64_t, int64_t, int64_t, int64_t, const Epilogue&);

void run_blocks(BlockFn fn, const u64* A, const u64* B, int64_t M, int64_t N, int64_t Kw, const Epilogue& ep,
                int64_t rows = MB) {
  at::parallel_for(0, (M + rows - 1) / rows, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) fn(A, B, blk * rows, std::min(M, (blk + 1) * rows), N, Kw, ep);
  });
}

// AVX2: popcount of 256 bits = two vpshufb nibble look-ups; byte counts accumulate for up to
// 31 chunks (31 * 8 < 256) before vpsadbw widens them. Micro-tile: 2 rows of A x 4 rows of B.
#define AVX2 __attribute__((target("avx2,popcnt")))

AVX2 inline __m256i pop_bytes(__m256i v, __m256i lut, __m256i low) {
  __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

// Sums of the byte counts of 4 accumulators -> one vector of 4 int64 (shuffles, not 4 hsums).
AVX2 inline __m256i hsum4(const __m256i* acc) {
  const __m256i z = _mm256_setzero_si256();
  __m256i s0 = _mm256_sad_epu8(acc[0], z), s1 = _mm256_sad_epu8(acc[1], z);
  __m256i s2 = _mm256_sad_epu8(acc[2], z), s3 = _mm256_sad_epu8(acc[3], z);
  __m256i t01 = _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
  __m256i t23 = _mm256_add_epi64(_mm256_unpacklo_epi64(s2, s3), _mm256_unpackhi_epi64(s2, s3));
  return _mm256_add_epi64(_mm256_permute2x128_si256(t01, t23, 0x20), _mm256_permute2x128_si256(t01, t23, 0x31));
}

// The epilogue of 4 columns in vector registers: K - 2 popcount (int64 lanes, |value| < 2^31)
// narrowed to int32, minus the padding correction, to float, times scale, plus bias; 4 stores.
AVX2 inline void store4(const Epilogue& ep, int64_t m, int64_t n, __m256i popc) {
  const int64_t img = ep.P ? m / ep.P : 0, p = ep.P ? m - img * ep.P : m;
  const int32_t r = ep.pad_index ? ep.pad_index[p] : -1;
  const __m256i v64 = _mm256_sub_epi64(_mm256_set1_epi64x(ep.K), _mm256_slli_epi64(popc, 1));
  __m128i v = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v64, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
  if (r >= 0) v = _mm_sub_epi32(v, _mm_loadu_si128((const __m128i*)(ep.pad_corr + (int64_t)r * ep.N + n)));
  __m128 y = _mm_cvtepi32_ps(v);
  if (ep.scale) y = _mm_mul_ps(y, _mm_loadu_ps(ep.scale + n));
  if (ep.bias) y = _mm_add_ps(y, _mm_loadu_ps(ep.bias + n));
  if (!ep.P) { _mm_storeu_ps(ep.out + m * ep.N + n, y); return; }
  alignas(16) float values[4];
  _mm_store_ps(values, y);
  float* o = ep.out + img * ep.N * ep.P + p;
  for (int c = 0; c < 4; ++c) o[(n + c) * ep.P] = values[c];
}

template <int R, int C>
AVX2 inline void tile(const u64* A, const u64* B, int64_t Kw, int64_t m, int64_t n, const Epilogue& ep) {
  static_assert(C == 1 || C == 4, "tiles are 4 columns wide, or 1 for the remainder");
  const __m256i lut = _mm256_setr_epi8(0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4, 0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i total[R];  // popcounts of (row r, column c) in lane c
  for (int r = 0; r < R; ++r) total[r] = _mm256_setzero_si256();
  const int64_t chunks = Kw / 4;
  for (int64_t c0 = 0; c0 < chunks; c0 += 31) {
    __m256i acc[R][4];
    for (int r = 0; r < R; ++r) for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_si256();
    const int64_t c1 = std::min(chunks, c0 + 31);
    for (int64_t k = c0 * 4; k < c1 * 4; k += 4) {
      __m256i a[R];
      for (int r = 0; r < R; ++r) a[r] = _mm256_loadu_si256((const __m256i*)(A + (m + r) * Kw + k));
      for (int c = 0; c < C; ++c) {
        __m256i b = _mm256_loadu_si256((const __m256i*)(B + (n + c) * Kw + k));
        for (int r = 0; r < R; ++r)
          acc[r][c] = _mm256_add_epi8(acc[r][c], pop_bytes(_mm256_xor_si256(a[r], b), lut, low));
      }
    }
    for (int r = 0; r < R; ++r) total[r] = _mm256_add_epi64(total[r], hsum4(acc[r]));
  }
  if (chunks * 4 < Kw) {  // the last 1-3 words
    for (int r = 0; r < R; ++r) {
      int64_t rest[4] = {};
      for (int64_t k = chunks * 4; k < Kw; ++k)
        for (int c = 0; c < C; ++c) rest[c] += _mm_popcnt_u64(A[(m + r) * Kw + k] ^ B[(n + c) * Kw + k]);
      total[r] = _mm256_add_epi64(total[r], _mm256_setr_epi64x(rest[0], rest[1], rest[2], rest[3]));
    }
  }
  for (int r = 0; r < R; ++r) {
    if (C == 4) { store4(ep, m + r, n, total[r]); continue; }
    alignas(32) int64_t counts[4];
    _mm256_store_si256((__m256i*)counts, total[r]);
    ep.store(m + r, n, counts, C);
  }
}

AVX2 void block_avx2(const u64* A, const u64* B, int64_t m0, int64_t m1, int64_t N, int64_t Kw, const Epilogue& ep) {
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) {
    int64_t m = m0;
    for (; m + 2 <= m1; m += 2) tile<2, 4>(A, B, Kw, m, n, ep);
    if (m < m1) tile<1, 4>(A, B, Kw, m, n, ep);
  }
  for (; n < N; ++n)
    for (int64_t m = m0; m < m1; ++m) tile<1, 1>(A, B, Kw, m, n, ep);
}

// AVX-512 VPOPCNTDQ. The tile is R rows of A x 16 columns of B, and each 64-bit lane owns one
// (row, column) pair: B is repacked into panels of 16 columns, word k of the 16 columns side by
// side (two zmm loads), each A word is broadcast, and xor + vpopcntq + add accumulate in place.
// No horizontal sums; 2R accumulators + 2 B registers fit the 32 zmm registers, but with R = 12
// GCC 12 spilled accumulators (391 against 512 GMAC/s at 4096x1152x128), so R = 8.
// 3 uops per 512 binary MACs; on cores that issue 512-bit ops on two ports (p0, p5), that is
// 341 binary MACs a cycle at most.
#define AVX512 __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512dq,avx512bw,avx2,popcnt")))
constexpr int PANEL = 16;  // columns of B per panel
constexpr int RMAX = 8;    // rows of A per tile

// B [N, Kw] -> panels [ceil(N/16)][Kw][16], columns past N zero (computed, never stored).
std::vector<u64> panels_of(const u64* B, int64_t N, int64_t Kw) {
  const int64_t groups = (N + PANEL - 1) / PANEL;
  std::vector<u64> panel(groups * Kw * PANEL, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < Kw; ++k) panel[((n / PANEL) * Kw + k) * PANEL + n % PANEL] = B[n * Kw + k];
  return panel;
}

// 8x8 floats transposed in registers: y[r][c] -> t[c][r].
AVX512 inline void transpose8x8(const __m256* y, __m256* t) {
  __m256 a0 = _mm256_unpacklo_ps(y[0], y[1]), a1 = _mm256_unpackhi_ps(y[0], y[1]);
  __m256 a2 = _mm256_unpacklo_ps(y[2], y[3]), a3 = _mm256_unpackhi_ps(y[2], y[3]);
  __m256 a4 = _mm256_unpacklo_ps(y[4], y[5]), a5 = _mm256_unpackhi_ps(y[4], y[5]);
  __m256 a6 = _mm256_unpacklo_ps(y[6], y[7]), a7 = _mm256_unpackhi_ps(y[6], y[7]);
  __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xEE);
  __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xEE);
  __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xEE);
  __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xEE);
  t[0] = _mm256_permute2f128_ps(b0, b4, 0x20); t[1] = _mm256_permute2f128_ps(b1, b5, 0x20);
  t[2] = _mm256_permute2f128_ps(b2, b6, 0x20); t[3] = _mm256_permute2f128_ps(b3, b7, 0x20);
  t[4] = _mm256_permute2f128_ps(b0, b4, 0x31); t[5] = _mm256_permute2f128_ps(b1, b5, 0x31);
  t[6] = _mm256_permute2f128_ps(b2, b6, 0x31); t[7] = _mm256_permute2f128_ps(b3, b7, 0x31);
}

// The epilogue of one R x 16 tile, all in zmm registers: per row, the two int64 accumulators
// as 16 int32, K - 2 popcount, minus the padding correction, to float, times scale, plus
// bias (loaded once a tile). Rows go out as 16 floats ([M, N]); in NCHW, 8 pixels of one image
// are transposed and stored as runs of 8 floats per channel, not as scalar stores 4P bytes apart.
// One division a tile (image and pixel of row m), not one per row: at K = 18 words the compute
// of a tile is ~430 cycles, and a per-row epilogue with divisions cost ~800 more.
template <int R>
AVX512 inline void store_tile512(const Epilogue& ep, int64_t m, int64_t n, const __m512i (&acc)[R][2], int live) {
  const __mmask16 mask = (__mmask16)((1u << live) - 1);
  const __m512i k = _mm512_set1_epi32((int32_t)ep.K);
  // the low 32 bits of the 8 + 8 int64 counts (all < 2^31) side by side: one vpermt2d, not two narrowings
  const __m512i low_dwords = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 scale = ep.scale ? _mm512_maskz_loadu_ps(mask, ep.scale + n) : _mm512_setzero_ps();
  const __m512 bias = ep.bias ? _mm512_maskz_loadu_ps(mask, ep.bias + n) : _mm512_setzero_ps();
  int64_t img = ep.P ? m / ep.P : 0, p = ep.P ? m - img * ep.P : m;
  const bool transposed = R == 8 && ep.P && p + 8 <= ep.P;
  __m512 y[R];
  for (int r = 0; r < R; ++r, ++p) {
    if (ep.P && p == ep.P) { p = 0; ++img; }
    const __m512i pop = _mm512_permutex2var_epi32(acc[r][0], low_dwords, acc[r][1]);
    __m512i v = _mm512_sub_epi32(k, _mm512_slli_epi32(pop, 1));
    const int32_t pad = ep.pad_index ? ep.pad_index[p] : -1;
    if (pad >= 0) v = _mm512_sub_epi32(v, _mm512_maskz_loadu_epi32(mask, ep.pad_corr + (int64_t)pad * ep.N + n));
    y[r] = _mm512_cvtepi32_ps(v);  // then a multiply and an add, not an FMA: the same roundings as every path
    if (ep.scale) y[r] = _mm512_mul_ps(y[r], scale);
    if (ep.bias) y[r] = _mm512_add_ps(y[r], bias);
    if (!ep.P) _mm512_mask_storeu_ps(ep.out + (m + r) * ep.N + n, mask, y[r]);
    else if (!transposed) {
      alignas(64) float values[16];
      _mm512_store_ps(values, y[r]);
      float* o = ep.out + img * ep.N * ep.P + p;
      for (int c = 0; c < live; ++c) o[(n + c) * ep.P] = values[c];
    }
  }
  if constexpr (R == 8) {
    if (!transposed) return;
    float* o = ep.out + img * ep.N * ep.P + (p - 8);
    __m256 half[8], t[8];
    for (int r = 0; r < 8; ++r) half[r] = _mm512_castps512_ps256(y[r]);
    transpose8x8(half, t);
    for (int c = 0; c < std::min(live, 8); ++c) _mm256_storeu_ps(o + (n + c) * ep.P, t[c]);
    if (live <= 8) return;
    for (int r = 0; r < 8; ++r) half[r] = _mm512_extractf32x8_ps(y[r], 1);
    transpose8x8(half, t);
    for (int c = 8; c < live; ++c) _mm256_storeu_ps(o + (n + c) * ep.P, t[c - 8]);
  }
}

template <int R>
AVX512 void tile512(const u64* A, const u64* panel, int64_t Kw, int64_t m, int64_t n, int64_t N, const Epilogue& ep) {
  __m512i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const u64* a = A + m * Kw;
  for (int64_t k = 0; k < Kw; ++k) {
    const __m512i b0 = _mm512_loadu_si512(panel + k * PANEL), b1 = _mm512_loadu_si512(panel + k * PANEL + 8);
    for (int r = 0; r < R; ++r) {
      const __m512i x = _mm512_set1_epi64((long long)a[r * Kw + k]);
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(x, b0)));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(x, b1)));
    }
  }
  store_tile512<R>(ep, m, n, acc, (int)std::min<int64_t>(PANEL, N - n));
}

template <int R>
AVX512 void rows512(const u64* A, const u64* panel, int64_t Kw, int64_t m, int64_t rows, int64_t n, int64_t N, const Epilogue& ep) {
  if constexpr (R > 0) {
    if (rows == R) return tile512<R>(A, panel, Kw, m, n, N, ep);
    return rows512<R - 1>(A, panel, Kw, m, rows, n, N, ep);
  }
}

void block_avx512(const u64* A, const u64* panels, int64_t m0, int64_t m1, int64_t N, int64_t Kw, const Epilogue& ep) {
  for (int64_t n = 0; n < N; n += PANEL) {
    const u64* panel = panels + (n / PANEL) * Kw * PANEL;
    for (int64_t m = m0; m < m1; m += RMAX)
      rows512<RMAX>(A, panel, Kw, m, std::min<int64_t>(RMAX, m1 - m), n, N, ep);
  }
}

std::string best_impl() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return "avx2";
  if (__builtin_cpu_supports("popcnt")) return "popcnt";
  return "portable";
}

const std::string& detected() { static const std::string impl = best_impl(); return impl; }
bool has_avx2() { return detected() == "avx512" || detected() == "avx2"; }

}  // namespace

// out = scale[n] * (K - 2 popcount(A[m] ^ B[n]) - pad correction) + bias[n]
at::Tensor xnor_gemm(at::Tensor A, at::Tensor B, int64_t K, c10::optional<at::Tensor> scale,
                        c10::optional<at::Tensor> bias, c10::optional<at::Tensor> pad_index,
                        c10::optional<at::Tensor> pad_corr, int64_t P, std::string impl) {
  TORCH_CHECK(A.dtype() == at::kLong && B.dtype() == at::kLong, "packed operands must be int64 words");
  TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(1), "A [M, Kw] and B [N, Kw] must share Kw");
  TORCH_CHECK(A.size(1) * 64 >= K, "K exceeds the packed width");
  A = A.contiguous(); B = B.contiguous();
  const int64_t M = A.size(0), N = B.size(0), Kw = A.size(1);
  TORCH_CHECK(P == 0 || M % P == 0, "M must be a multiple of P");
  auto out = P ? at::empty({M / P, N, P}, at::kFloat) : at::empty({M, N}, at::kFloat);
  auto ptr = [](const c10::optional<at::Tensor>& t) { return t && t->defined() ? t : c10::optional<at::Tensor>(); };
  auto sc = ptr(scale), bi = ptr(bias), pi = ptr(pad_index), pc = ptr(pad_corr);
  at::Tensor sct = sc ? sc->contiguous().to(at::kFloat) : at::Tensor();
  at::Tensor bit = bi ? bi->contiguous().to(at::kFloat) : at::Tensor();
  at::Tensor pit = pi ? pi->contiguous().to(at::kInt) : at::Tensor();
  at::Tensor pct = pc ? pc->contiguous().to(at::kInt) : at::Tensor();
  Epilogue ep{K, sc ? sct.data_ptr<float>() : nullptr, bi ? bit.data_ptr<float>() : nullptr,
              pi ? pit.data_ptr<int32_t>() : nullptr, pc ? pct.data_ptr<int32_t>() : nullptr,
              N, P, out.data_ptr<float>()};
  const u64* a = reinterpret_cast<const u64*>(A.data_ptr<int64_t>());
  const u64* b = reinterpret_cast<const u64*>(B.data_ptr<int64_t>());
  if (impl == "auto") impl = detected();
  if (impl == "avx512") {
    TORCH_CHECK(detected() == "avx512", "this CPU has no AVX-512 VPOPCNTDQ");
    const std::vector<u64> panels = panels_of(b, N, Kw);
    run_blocks(block_avx512, a, panels.data(), M, N, Kw, ep, 96);
  }
  else if (impl == "avx2") { TORCH_CHECK(has_avx2(), "this CPU has no AVX2"); run_blocks(block_avx2, a, b, M, N, Kw, ep); }
  else if (impl == "popcnt") { TORCH_CHECK(detected() != "portable", "this CPU has no POPCNT"); run_blocks(block_popcnt, a, b, M, N, Kw, ep); }
  else if (impl == "portable") run_blocks(block_portable, a, b, M, N, Kw, ep);
  else TORCH_CHECK(false, "unknown impl '", impl, "'");
  return out;
}

// Packing kernels, one per ISA (so that the compiler vectorizes the compares with AVX2).
// Channels-first: a block of PB pixels accumulates its words in registers/L1 (contiguous, so
// the compare-shift-or vectorizes across pixels), then stores them NHWC.
constexpr int64_t PB = 256;
#define PACK_BLOCKS(SUFFIX, ATTR)                                                                \
  ATTR void pack_channels_##SUFFIX(const float* x, const float* t, const uint8_t* f, u64* out,   \
                                   int64_t C, int64_t HW, int64_t Cw, int64_t b, int64_t w) {    \
    for (int64_t p0 = 0; p0 < HW; p0 += PB) {                                                    \
      const int64_t np = std::min(PB, HW - p0);                                                  \
      u64 acc[PB] = {};                                                                          \
      for (int64_t c = w * 64; c < std::min(C, w * 64 + 64); ++c) {                             \
        const float* row = x + (b * C + c) * HW + p0; const float tc = t[c]; const int sh = c % 64; \
        if (f[c]) for (int64_t i = 0; i < np; ++i) acc[i] |= (u64)(row[i] > tc) << sh;           \
        else      for (int64_t i = 0; i < np; ++i) acc[i] |= (u64)(row[i] < tc) << sh;           \
      }                                                                                          \
      for (int64_t i = 0; i < np; ++i) out[(b * HW + p0 + i) * Cw + w] = acc[i];                 \
    }                                                                                            \
  }
PACK_BLOCKS(avx2, __attribute__((target("avx2"))))
PACK_BLOCKS(portable, )

void pack_rows_portable(const float* x, const float* t, const uint8_t* f, u64* out, int64_t K, int64_t Kw, int64_t m) {
  for (int64_t w = 0; w < Kw; ++w) {
    u64 word = 0;
    for (int64_t j = w * 64; j < std::min(K, w * 64 + 64); ++j)
      word |= (u64)(f[j] ? x[m * K + j] > t[j] : x[m * K + j] < t[j]) << (j % 64);
    out[m * Kw + w] = word;
  }
}

// Rows with AVX2: 8 signs per compare + movemask (a flipped channel takes the > compare).
__attribute__((target("avx2"))) void pack_rows_movemask(const float* x, const float* t, const uint8_t* f, u64* out,
                                                        int64_t K, int64_t Kw, int64_t m) {
  const float* xr = x + m * K;
  int64_t j = 0;
  for (; j + 8 <= K; j += 8) {
    __m256 v = _mm256_loadu_ps(xr + j), tv = _mm256_loadu_ps(t + j);
    __m256 flip = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(f + j))), _mm256_setzero_si256()));
    __m256 neg = _mm256_blendv_ps(_mm256_cmp_ps(v, tv, _CMP_LT_OQ), _mm256_cmp_ps(v, tv, _CMP_GT_OQ), flip);
    const u64 bits = (u64)(unsigned)_mm256_movemask_ps(neg);
    if (j % 64 == 0) out[m * Kw + j / 64] = 0;
    out[m * Kw + j / 64] |= bits << (j % 64);
  }
  for (; j < K; ++j) {
    if (j % 64 == 0) out[m * Kw + j / 64] = 0;
    out[m * Kw + j / 64] |= (u64)(f[j] ? xr[j] > t[j] : xr[j] < t[j]) << (j % 64);
  }
}

// Rows with AVX-512: 16 signs per compare straight into a mask register, four masks a word.
AVX512 void pack_rows_mask(const float* x, const float* t, const uint8_t* f, u64* out, int64_t K, int64_t Kw, int64_t m) {
  const float* xr = x + m * K;
  for (int64_t w = 0; w < Kw; ++w) {
    u64 word = 0;
    for (int q = 0; q < 4; ++q) {
      const int64_t j = w * 64 + q * 16;
      if (j >= K) break;
      const __mmask16 live = K - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - j)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(live, xr + j), tv = _mm512_maskz_loadu_ps(live, t + j);
      const __mmask16 flip = _mm_test_epi8_mask(_mm_maskz_loadu_epi8(live, f + j), _mm_set1_epi8(-1));
      const __mmask16 neg = (_mm512_mask_cmp_ps_mask(live & ~flip, v, tv, _CMP_LT_OQ) |
                             _mm512_mask_cmp_ps_mask(live & flip, v, tv, _CMP_GT_OQ));
      word |= (u64)neg << (q * 16);
    }
    out[m * Kw + w] = word;
  }
}

// Signs of x [B, C, H, W] (float32) -> words [B, H, W, ceil(C/64)], channel c in bit c%64.
// With thresholds (a batch norm folded in front of the sign): -1 where x < t[c], or x > t[c]
// where flip[c] (negative BN scale). H = W = 1 is a plain [B, C] matrix packed by rows.
at::Tensor pack_nchw(at::Tensor x, c10::optional<at::Tensor> threshold, c10::optional<at::Tensor> flip) {
  TORCH_CHECK(x.dim() == 4 && x.dtype() == at::kFloat, "x must be float32 [B, C, H, W]");
  x = x.contiguous();
  const int64_t Bn = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), Cw = (C + 63) / 64;
  auto out = at::empty({Bn, x.size(2), x.size(3), Cw}, at::kLong);
  const bool thr = threshold && threshold->defined();
  at::Tensor t = thr ? threshold->contiguous().to(at::kFloat) : at::zeros({C}, at::kFloat);
  at::Tensor f = thr && flip && flip->defined() ? flip->contiguous().to(at::kByte) : at::zeros({C}, at::kByte);
  const float* xp = x.data_ptr<float>(); const float* tp = t.data_ptr<float>(); const uint8_t* fp = f.data_ptr<uint8_t>();
  u64* op = reinterpret_cast<u64*>(out.data_ptr<int64_t>());
  const bool avx2 = has_avx2(), avx512 = detected() == "avx512";
  if (HW == 1) {
    at::parallel_for(0, Bn, 64, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        avx512 ? pack_rows_mask(xp, tp, fp, op, C, Cw, m)
               : avx2 ? pack_rows_movemask(xp, tp, fp, op, C, Cw, m) : pack_rows_portable(xp, tp, fp, op, C, Cw, m);
    });
    return out;
  }
  at::parallel_for(0, Bn * Cw, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      avx2 ? pack_channels_avx2(xp, tp, fp, op, C, HW, Cw, j / Cw, j % Cw)
           : pack_channels_portable(xp, tp, fp, op, C, HW, Cw, j / Cw, j % Cw);
  });
  return out;
}

// Packed im2col: words [B, H, W, Cw] -> [B*Ho*Wo, kh*kw*Cw], taps in (ky, kx, word) order;
// taps in the zero padding are word 0 (+1): xnor_gemm's pad correction removes them.
at::Tensor im2col_packed(at::Tensor xp, int64_t kh, int64_t kw, int64_t stride, int64_t pad) {
  TORCH_CHECK(xp.dim() == 4 && xp.dtype() == at::kLong, "packed input must be int64 [B, H, W, Cw]");
  xp = xp.contiguous();
  const int64_t Bn = xp.size(0), H = xp.size(1), W = xp.size(2), Cw = xp.size(3);
  const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
  auto out = at::empty({Bn * Ho * Wo, kh * kw * Cw}, at::kLong);
  const int64_t* src = xp.data_ptr<int64_t>(); int64_t* dst = out.data_ptr<int64_t>();
  at::parallel_for(0, Bn * Ho, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / Ho, oy = r % Ho;
      for (int64_t ox = 0; ox < Wo; ++ox) {
        int64_t* d = dst + (r * Wo + ox) * kh * kw * Cw;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * stride - pad + ky;
          for (int64_t kx = 0; kx < kw; ++kx, d += Cw) {
            const int64_t ix = ox * stride - pad + kx;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) { for (int64_t w = 0; w < Cw; ++w) d[w] = 0; }
            else { const int64_t* s = src + ((b * H + iy) * W + ix) * Cw; for (int64_t w = 0; w < Cw; ++w) d[w] = s[w]; }
          }
        }
      }
    }
  });
  return out;
}


// Issue-rate probes: independent register-only chains of each path's inner op mix (and of fp32
// FMA at the widest width the CPU has, what BLAS runs), `iters` iterations; the caller times
// them and knows the MACs an iteration (ISSUE_PROBES in kernels/bench.py). The chains feed
// back into themselves, so nothing is hoisted out of the loop; the sum keeps them alive.
AVX512 double probe_avx512(int64_t iters) {
  __m512i acc[16];
  const __m512i b = _mm512_set1_epi64(0x5a5a5a5a5a5a5a5aLL);
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_epi64(j + 1);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_add_epi64(acc[j], _mm512_popcnt_epi64(_mm512_xor_si512(acc[j], b)));
  __m512i sum = acc[0];
  for (int j = 1; j < 16; ++j) sum = _mm512_add_epi64(sum, acc[j]);
  return (double)_mm512_reduce_add_epi64(sum);
}

AVX2 double probe_avx2(int64_t iters) {
  const __m256i lut = _mm256_setr_epi8(0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4, 0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4);
  const __m256i low = _mm256_set1_epi8(0x0f), b = _mm256_set1_epi8(0x5a);
  __m256i acc[10];
  for (int j = 0; j < 10; ++j) acc[j] = _mm256_set1_epi8((char)(j + 1));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 10; ++j) acc[j] = _mm256_add_epi8(acc[j], pop_bytes(_mm256_xor_si256(acc[j], b), lut, low));
  alignas(32) uint8_t bytes[32];
  double total = 0;
  for (int j = 0; j < 10; ++j) { _mm256_store_si256((__m256i*)bytes, acc[j]); for (uint8_t v : bytes) total += v; }
  return total;
}

__attribute__((target("popcnt"))) double probe_popcnt(int64_t iters) {
  u64 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = j + 1;
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 8; ++j) acc[j] += __builtin_popcountll(acc[j] ^ 0x5a5a5a5a5a5a5a5aULL);
  double total = 0;
  for (u64 v : acc) total += (double)v;
  return total;
}

AVX512 double probe_fma512(int64_t iters) {
  __m512 acc[16];
  const __m512 a = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_set1_ps((float)j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, c);
  __m512 sum = acc[0];
  for (int j = 1; j < 16; ++j) sum = _mm512_add_ps(sum, acc[j]);
  return (double)_mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) double probe_fma256(int64_t iters) {
  __m256 acc[12];
  const __m256 a = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (int j = 0; j < 12; ++j) acc[j] = _mm256_set1_ps((float)j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, c);
  alignas(32) float values[8];
  double total = 0;
  for (int j = 0; j < 12; ++j) { _mm256_store_ps(values, acc[j]); for (float v : values) total += v; }
  return total;
}

double issue_probe(std::string kind, int64_t iters) {
  const std::string& isa = detected();
  if (kind == "avx512") { TORCH_CHECK(isa == "avx512", "this CPU has no AVX-512 VPOPCNTDQ"); return probe_avx512(iters); }
  if (kind == "avx2") { TORCH_CHECK(has_avx2(), "this CPU has no AVX2"); return probe_avx2(iters); }
  if (kind == "popcnt") { TORCH_CHECK(isa != "portable", "this CPU has no POPCNT"); return probe_popcnt(iters); }
  if (kind == "fma512") { TORCH_CHECK(__builtin_cpu_supports("avx512f"), "this CPU has no AVX-512"); return probe_fma512(iters); }
  if (kind == "fma256") { TORCH_CHECK(__builtin_cpu_supports("fma"), "this CPU has no FMA"); return probe_fma256(iters); }
  TORCH_CHECK(false, "unknown probe '", kind, "'");
}

std::string cpu_impl() { return detected(); }

// Every path this CPU can run, fastest first (the tests check each against the portable one).
std::vector<std::string> cpu_impls() {
  const std::vector<std::string> order = {"avx512", "avx2", "popcnt", "portable"};
  std::vector<std::string> out;
  bool on = false;
  for (const auto& impl : order) { on = on || impl == detected(); if (on) out.push_back(impl); }
  return out;
}

TORCH_LIBRARY(repro_xnor, m) {
  m.def("xnor_gemm", &xnor_gemm);
  m.def("pack_nchw", &pack_nchw);
  m.def("im2col_packed", &im2col_packed);
  m.def("cpu_impl", &cpu_impl);
  m.def("cpu_impls", &cpu_impls);
  m.def("issue_probe", &issue_probe);
}
