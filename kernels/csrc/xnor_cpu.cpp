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

// The epilogue of one R x 16 tile, all in zmm registers: per row, the two int64 accumulators
// as 16 int32, K - 2 popcount, minus the padding correction, to float, times scale, plus bias
// (loaded once a tile), stored as 16 floats ([M, N]) or, in NCHW, 16 strided values (the conv
// itself runs as conv512 below; this path serves xnor_gemm's `pixels` argument). One division a
// tile, not one per row: at K = 18 words a tile computes in ~430 cycles, and a per-row epilogue
// with divisions cost ~800 more.
template <int R>
AVX512 inline void store_tile512(const Epilogue& ep, int64_t m, int64_t n, const __m512i (&acc)[R][2], int live) {
  const __mmask16 mask = (__mmask16)((1u << live) - 1);
  const __m512i k = _mm512_set1_epi32((int32_t)ep.K);
  // the low 32 bits of the 8 + 8 int64 counts (all < 2^31) side by side: one vpermt2d, not two narrowings
  const __m512i low_dwords = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 scale = ep.scale ? _mm512_maskz_loadu_ps(mask, ep.scale + n) : _mm512_setzero_ps();
  const __m512 bias = ep.bias ? _mm512_maskz_loadu_ps(mask, ep.bias + n) : _mm512_setzero_ps();
  int64_t img = ep.P ? m / ep.P : 0, p = ep.P ? m - img * ep.P : m;
#pragma GCC unroll 8  // unrolled, the accumulators stay in registers (not copied to the stack)
  for (int r = 0; r < R; ++r, ++p) {
    if (ep.P && p == ep.P) { p = 0; ++img; }
    const __m512i pop = _mm512_permutex2var_epi32(acc[r][0], low_dwords, acc[r][1]);
    __m512i v = _mm512_sub_epi32(k, _mm512_slli_epi32(pop, 1));
    const int32_t pad = ep.pad_index ? ep.pad_index[p] : -1;
    if (pad >= 0) v = _mm512_sub_epi32(v, _mm512_maskz_loadu_epi32(mask, ep.pad_corr + (int64_t)pad * ep.N + n));
    __m512 y = _mm512_cvtepi32_ps(v);  // then a multiply and an add, not an FMA: the same roundings as every path
    if (ep.scale) y = _mm512_mul_ps(y, scale);
    if (ep.bias) y = _mm512_add_ps(y, bias);
    if (!ep.P) { _mm512_mask_storeu_ps(ep.out + (m + r) * ep.N + n, mask, y); continue; }
    alignas(64) float values[16];
    _mm512_store_ps(values, y);
    float* o = ep.out + img * ep.N * ep.P + p;
    for (int c = 0; c < live; ++c) o[(n + c) * ep.P] = values[c];
  }
}

// acc[r][h] lane j += popcount(a[r] ^ column 8h + j of the panel), over Kw words.
template <int R>
AVX512 inline void accumulate512(const u64* a, const u64* panel, int64_t Kw, __m512i (&acc)[R][2]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < Kw; ++k) {
    const __m512i b0 = _mm512_loadu_si512(panel + k * PANEL), b1 = _mm512_loadu_si512(panel + k * PANEL + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i x = _mm512_set1_epi64((long long)a[r * Kw + k]);
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(x, b0)));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(x, b1)));
    }
  }
}

template <int R>
AVX512 void tile512(const u64* A, const u64* panel, int64_t Kw, int64_t m, int64_t n, int64_t N, const Epilogue& ep) {
  __m512i acc[R][2];
  accumulate512<R>(A + m * Kw, panel, Kw, acc);
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

// A conv on AVX-512 with the im2col fused and the product turned around: the tile's rows are
// output channels (weight rows, broadcast) and its 16 columns are output pixels (a panel
// gathered from the packed input into L1), so that a tile row is 16 contiguous floats of one
// NCHW channel: no transposes, and no im2col matrix written to memory and read back.
struct ConvGeometry {
  int64_t H, W, Cw, kh, kw, stride, pad, Ho, Wo;
};

// panel[(tap * Cw + w) * 16 + j] = word w of the input pixel under tap `tap` of output pixel
// p0 + j: the taps in im2col_packed's order; word 0 (+1) in the zero padding (the correction
// removes it) and past `count`. When the 16 pixels lie in one output row (the usual case), the
// image bounds give one run of valid lanes per tap, copied without a test per word.
void gather_panel(const u64* x, const ConvGeometry& g, int64_t p0, int64_t count, u64* panel) {
  int64_t oy = p0 / g.Wo, ox = p0 % g.Wo;
  if (ox + count <= g.Wo) {
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.stride - g.pad + ky;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        u64* dst = panel + (ky * g.kw + kx) * g.Cw * PANEL;
        const int64_t ix0 = ox * g.stride - g.pad + kx;  // input column of lane 0
        int64_t lo = 0, hi = 0;  // lanes [lo, hi) read the image
        if (iy >= 0 && iy < g.H) {
          lo = std::min<int64_t>(count, std::max<int64_t>(0, (-ix0 + g.stride - 1) / g.stride));
          hi = std::max(lo, std::min<int64_t>(count, (g.W - ix0 + g.stride - 1) / g.stride));
        }
        const u64* src = x + (iy * g.W + ix0) * g.Cw;
        for (int64_t w = 0; w < g.Cw; ++w) {
          u64* d = dst + w * PANEL;
          for (int64_t j = 0; j < lo; ++j) d[j] = 0;
          for (int64_t j = lo; j < hi; ++j) d[j] = src[j * g.stride * g.Cw + w];
          for (int64_t j = hi; j < PANEL; ++j) d[j] = 0;
        }
      }
    }
    return;
  }
  for (int64_t j = 0; j < PANEL; ++j) {
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
        const bool inside = j < count && iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
        const u64* src = x + (iy * g.W + ix) * g.Cw;
        u64* dst = panel + (ky * g.kw + kx) * g.Cw * PANEL + j;
        for (int64_t w = 0; w < g.Cw; ++w) dst[w * PANEL] = inside ? src[w] : 0;
      }
    if (++ox == g.Wo) { ox = 0; ++oy; }
  }
}

// Channels c0 .. c0+R-1 of pixels p0 .. p0+count-1, as store_tile512 does it. The padding
// correction is channel-major here ([O, nb]): border pixels are numbered in pixel order, so a
// panel's border lanes have consecutive numbers and one expand-load per row puts their
// corrections in their lanes (a vpgatherdd per row cost more than the whole tile's compute).
template <int R>
AVX512 inline void store_conv_tile512(const Epilogue& ep, float* out, int64_t c0, int64_t p0, int count,
                                      const __m512i (&acc)[R][2], const int32_t* corr, int64_t nb, __mmask16 border) {
  const __mmask16 mask = (__mmask16)((1u << count) - 1);
  const __m512i k = _mm512_set1_epi32((int32_t)ep.K);
  const __m512i low_dwords = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const int64_t c = c0 + r;
    const __m512i pop = _mm512_permutex2var_epi32(acc[r][0], low_dwords, acc[r][1]);
    __m512i v = _mm512_sub_epi32(k, _mm512_slli_epi32(pop, 1));
    if (border) v = _mm512_sub_epi32(v, _mm512_maskz_expandloadu_epi32(border, corr + c * nb));
    __m512 y = _mm512_cvtepi32_ps(v);  // a multiply, then an add: the roundings of every path
    if (ep.scale) y = _mm512_mul_ps(y, _mm512_set1_ps(ep.scale[c]));
    if (ep.bias) y = _mm512_add_ps(y, _mm512_set1_ps(ep.bias[c]));
    _mm512_mask_storeu_ps(out + c * ep.P + p0, mask, y);
  }
}

template <int R>
AVX512 void conv_rows512(const u64* weights, const u64* panel, int64_t Kw, int64_t c0, int64_t rows, const Epilogue& ep,
                         float* out, int64_t p0, int count, const int32_t* corr, int64_t nb, __mmask16 border) {
  if constexpr (R > 0) {
    if (rows != R) return conv_rows512<R - 1>(weights, panel, Kw, c0, rows, ep, out, p0, count, corr, nb, border);
    __m512i acc[R][2];
    accumulate512<R>(weights + c0 * Kw, panel, Kw, acc);
    store_conv_tile512<R>(ep, out, c0, p0, count, acc, corr, nb, border);
  }
}

// One panel of 16 output pixels of image b, against every output channel.
// ep.pad_corr is channel-major, [O, nb].
AVX512 void conv_panel512(const u64* x, const u64* weights, const ConvGeometry& g, int64_t Kw, const Epilogue& ep,
                          int64_t nb, int64_t b, int64_t p0, u64* panel) {
  const int count = (int)std::min<int64_t>(PANEL, ep.P - p0);
  gather_panel(x + b * g.H * g.W * g.Cw, g, p0, count, panel);
  __mmask16 border = 0;
  const int32_t* corr = ep.pad_corr;
  if (ep.pad_index) {
    const __m512i index = _mm512_mask_loadu_epi32(_mm512_set1_epi32(-1), (__mmask16)((1u << count) - 1), ep.pad_index + p0);
    border = _mm512_cmpge_epi32_mask(index, _mm512_setzero_si512());
    if (border) corr += ep.pad_index[p0 + __builtin_ctz(border)];  // the panel's first border number
  }
  float* out = ep.out + b * ep.N * ep.P;
  for (int64_t c = 0; c < ep.N; c += RMAX)
    conv_rows512<RMAX>(weights, panel, Kw, c, std::min<int64_t>(RMAX, ep.N - c), ep, out, p0, count, corr, nb, border);
}

void conv512(const u64* x, const u64* weights, int64_t batch, const ConvGeometry& g, int64_t Kw, const Epilogue& ep, int64_t nb) {
  const int64_t panels = (ep.P + PANEL - 1) / PANEL;
  at::parallel_for(0, batch * panels, 4, [&](int64_t t0, int64_t t1) {
    std::vector<u64> panel(Kw * PANEL);
    for (int64_t t = t0; t < t1; ++t) conv_panel512(x, weights, g, Kw, ep, nb, t / panels, (t % panels) * PANEL, panel.data());
  });
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

// The epilogue's optional tensors, made contiguous and of the kernel's dtypes (kept alive here).
struct EpilogueTensors {
  at::Tensor scale, bias, pad_index, pad_corr;
  EpilogueTensors(const c10::optional<at::Tensor>& s, const c10::optional<at::Tensor>& b,
                  const c10::optional<at::Tensor>& pi, const c10::optional<at::Tensor>& pc) {
    auto take = [](const c10::optional<at::Tensor>& t, at::ScalarType type) {
      return t && t->defined() ? t->contiguous().to(type) : at::Tensor();
    };
    scale = take(s, at::kFloat); bias = take(b, at::kFloat); pad_index = take(pi, at::kInt); pad_corr = take(pc, at::kInt);
  }
  Epilogue of(int64_t K, int64_t N, int64_t P, at::Tensor& out) const {
    return Epilogue{K, scale.defined() ? scale.data_ptr<float>() : nullptr, bias.defined() ? bias.data_ptr<float>() : nullptr,
                    pad_index.defined() ? pad_index.data_ptr<int32_t>() : nullptr,
                    pad_corr.defined() ? pad_corr.data_ptr<int32_t>() : nullptr, N, P, out.data_ptr<float>()};
  }
};

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
  const EpilogueTensors tensors(scale, bias, pad_index, pad_corr);
  const Epilogue ep = tensors.of(K, N, P, out);
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

at::Tensor im2col_packed(at::Tensor xp, int64_t kh, int64_t kw, int64_t stride, int64_t pad);

// Binary conv of packed activations [B, H, W, Cw] with packed weights [O, kh*kw*Cw] -> float
// [B, O, Ho, Wo]: fused on AVX-512 (conv512), else packed im2col + xnor_gemm. The padding
// correction comes in both layouts: [nb, O] (xnor_gemm) and channel-major [O, nb] (conv512).
at::Tensor xnor_conv2d(at::Tensor xp, at::Tensor weights, int64_t K, int64_t kh, int64_t kw, int64_t stride, int64_t pad,
                       c10::optional<at::Tensor> scale, c10::optional<at::Tensor> bias,
                       c10::optional<at::Tensor> pad_index, c10::optional<at::Tensor> pad_corr,
                       c10::optional<at::Tensor> pad_corr_by_channel, std::string impl) {
  TORCH_CHECK(xp.dim() == 4 && xp.dtype() == at::kLong && weights.dtype() == at::kLong, "packed input [B, H, W, Cw] and weights must be int64 words");
  xp = xp.contiguous(); weights = weights.contiguous();
  const int64_t batch = xp.size(0), H = xp.size(1), W = xp.size(2), Cw = xp.size(3), O = weights.size(0);
  TORCH_CHECK(weights.size(1) == kh * kw * Cw, "weights must be [O, kh*kw*Cw] words");
  const ConvGeometry g{H, W, Cw, kh, kw, stride, pad, (H + 2 * pad - kh) / stride + 1, (W + 2 * pad - kw) / stride + 1};
  if (impl == "auto") impl = detected();
  if (impl != "avx512") {
    at::Tensor cols = im2col_packed(xp, kh, kw, stride, pad);
    return xnor_gemm(cols, weights, K, scale, bias, pad_index, pad_corr, g.Ho * g.Wo, impl).view({batch, O, g.Ho, g.Wo});
  }
  TORCH_CHECK(detected() == "avx512", "this CPU has no AVX-512 VPOPCNTDQ");
  auto out = at::empty({batch, O, g.Ho, g.Wo}, at::kFloat);
  const EpilogueTensors tensors(scale, bias, pad_index, pad_corr_by_channel);
  const int64_t nb = tensors.pad_corr.defined() ? tensors.pad_corr.size(1) : 0;
  TORCH_CHECK(!tensors.pad_index.defined() || (tensors.pad_corr.defined() && tensors.pad_corr.size(0) == O),
              "the AVX-512 conv needs the padding correction channel-major, [O, nb]");
  conv512(reinterpret_cast<const u64*>(xp.data_ptr<int64_t>()), reinterpret_cast<const u64*>(weights.data_ptr<int64_t>()),
          batch, g, kh * kw * Cw, tensors.of(K, O, g.Ho * g.Wo, out), nb);
  return out;
}

// Packing kernels, one per ISA (so that the compiler vectorizes the compares with AVX2).
// Channels-first: a block of PB pixels accumulates its words in registers/L1 (contiguous, so
// the compare-shift-or vectorizes across pixels), then stores them NHWC. 1024 pixels: each
// channel is read in runs of one 4 KB page, which the hardware prefetcher follows.
constexpr int64_t PB = 1024;
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
  m.def("xnor_conv2d", &xnor_conv2d);
  m.def("cpu_impl", &cpu_impl);
  m.def("cpu_impls", &cpu_impls);
  m.def("issue_probe", &issue_probe);
}
