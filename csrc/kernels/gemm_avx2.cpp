// AVX2/FMA fp32 GEMM kernels (compiled with -mavx2 -mfma; entered only through gemm.cpp's dispatch). Everything
// lives in namespace impl_avx2 so every emitted function carries "_avx2" in its name.
//
// Micro-kernel: 6 x 16 tile in 12 ymm accumulators; a 32-wide packed panel is done as two 16-column halves.
#include <immintrin.h>

#include "kernels/gemm.h"

#define LG_VEC_NS vec_avx2
#define LG_VEC_ISA 1
#include "kernels/vec_math.h"

namespace lg::gemm::detail {
namespace impl_avx2 {

constexpr int kMaxMR = 6;

// The activations: vec_math.h's, the same code the elementwise programs run.
inline __m256 act_ps(__m256 v, int act) { return lg::kernels::vec_avx2::vact(v, act); }

inline __m256i mask_for(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 load_m(const float* p, __m256i m, int n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
inline void store_m(float* p, __m256 v, __m256i m, int n) {
  if (n >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, m, v);
}

// n valid columns (<= 8, > 0) of row `row`, column `col` in the tile.
inline void finish_store(__m256 v, float* dst, __m256i m, int n, const TileEpi* ep, __m256 bias, int row, int col) {
  if (ep) {
    v = _mm256_add_ps(v, bias);
    const float* res = ep->residual ? ep->residual + row * ep->ld_residual + col : nullptr;
    if (res && ep->residual_before_act) v = _mm256_add_ps(v, load_m(res, m, n));
    v = act_ps(v, ep->act);
    if (res && !ep->residual_before_act) v = _mm256_add_ps(v, load_m(res, m, n));
  }
  store_m(dst, v, m, n);
}

void epilogue_avx2(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep);

// ---------------------------------------------------------------------------------------------- micro-kernel
// Columns [0, 16) of a panel slice (row stride W): MR x 16 in 2*MR ymm accumulators.
// pf / pf_bytes: prefetched into L2 across the k loop, a line or a few per step (see MicroKernel in gemm.h).
template <int MR>
void micro16_t(int64_t kc, const float* __restrict ap, const float* __restrict bp, int64_t W, float* c, int64_t ldc,
               int nr, bool accumulate, const TileEpi* ep, int col0, const char* pf, int64_t pf_bytes) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const char* pf_end = pf ? pf + pf_bytes : nullptr;
  const int64_t lines_per_k = pf_bytes > 0 ? (pf_bytes / 64 + kc - 1) / kc : 0;
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t q = 0; q < lines_per_k && pf < pf_end; ++q, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    const __m256 b0 = _mm256_load_ps(bp + k * W), b1 = _mm256_load_ps(bp + k * W + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + k * MR + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const int n0 = nr < 8 ? nr : 8, n1 = nr - 8;
  const __m256i m0 = mask_for(n0), m1 = mask_for(n1);
  if (ep && act_is_transcendental(ep->act)) {
    // GELU / SiLU / tanh / sigmoid need ~20 constants and temporaries: beside 2 * MR live accumulators they
    // spilled (measured: GELU cost 20-25% of a 128 x 3072 x 768 GEMM). Store the tile, then one epilogue pass over
    // it while it is in L1, as the AVX-512 unit does.
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float* dst = c + i * ldc;
      __m256 r0 = acc[i][0], r1 = acc[i][1];
      if (accumulate) r0 = _mm256_add_ps(r0, load_m(dst, m0, n0));
      store_m(dst, r0, m0, n0);
      if (n1 > 0) {
        if (accumulate) r1 = _mm256_add_ps(r1, load_m(dst + 8, m1, n1));
        store_m(dst + 8, r1, m1, n1);
      }
    }
    TileEpi half = *ep;
    half.bias = ep->bias ? ep->bias + col0 : nullptr;
    half.residual = ep->residual ? ep->residual + col0 : nullptr;
    epilogue_avx2(c, ldc, MR, nr, &half);
    return;
  }
  const bool has_bias = ep && ep->bias;
  const __m256 bias0 = has_bias ? load_m(ep->bias + col0, m0, n0) : _mm256_setzero_ps();
  const __m256 bias1 = has_bias && n1 > 0 ? load_m(ep->bias + col0 + 8, m1, n1) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* dst = c + i * ldc;
    __m256 r0 = acc[i][0], r1 = acc[i][1];
    if (accumulate) r0 = _mm256_add_ps(r0, load_m(dst, m0, n0));
    finish_store(r0, dst, m0, n0, ep, bias0, i, col0);
    if (n1 > 0) {
      if (accumulate) r1 = _mm256_add_ps(r1, load_m(dst + 8, m1, n1));
      finish_store(r1, dst + 8, m1, n1, ep, bias1, i, col0 + 8);
    }
  }
}

template <int MR>
void micro_t(int64_t kc, const float* ap, const float* bp, int64_t width, float* c, int64_t ldc, int nr,
             bool accumulate, const TileEpi* ep, const char* pf, int64_t pf_bytes) {
  const int halves = static_cast<int>(width / 16);
  for (int h = 0; h < halves && 16 * h < nr; ++h) {
    const int nh = nr - 16 * h < 16 ? nr - 16 * h : 16;
    const int64_t p0 = pf_bytes * h / halves, p1 = pf_bytes * (h + 1) / halves;
    micro16_t<MR>(kc, ap, bp + 16 * h, width, c + 16 * h, ldc, nh, accumulate, ep, 16 * h, pf ? pf + p0 : nullptr,
                  p1 - p0);
  }
}

void micro_avx2(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc, int mr, int nr,
                bool accumulate, const TileEpi* ep, const char* pf, int64_t pf_bytes) {
  const auto* a = static_cast<const float*>(ap);
  const auto* b = static_cast<const float*>(bp);
  switch (mr) {
    case 1: return micro_t<1>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
    case 2: return micro_t<2>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
    case 3: return micro_t<3>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
    case 4: return micro_t<4>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
    case 5: return micro_t<5>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
    default: return micro_t<6>(kc, a, b, width, c, ldc, nr, accumulate, ep, pf, pf_bytes);
  }
}

// ---------------------------------------------------------------------------------------------- small M (GEMV)
template <int M, int U>
void small16_t(int64_t K, const float* __restrict a, int64_t lda, const float* __restrict bp, int64_t W, float* c,
               int64_t ldc, int nr, const TileEpi* ep, int col0) {
  __m256 acc[U][M][2];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[u][i][0] = acc[u][i][1] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + U <= K; k += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __m256 b0 = _mm256_load_ps(bp + (k + u) * W), b1 = _mm256_load_ps(bp + (k + u) * W + 8);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + i * lda + k + u);
        acc[u][i][0] = _mm256_fmadd_ps(av, b0, acc[u][i][0]);
        acc[u][i][1] = _mm256_fmadd_ps(av, b1, acc[u][i][1]);
      }
    }
  }
  for (; k < K; ++k) {
    const __m256 b0 = _mm256_load_ps(bp + k * W), b1 = _mm256_load_ps(bp + k * W + 8);
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
      acc[0][i][0] = _mm256_fmadd_ps(av, b0, acc[0][i][0]);
      acc[0][i][1] = _mm256_fmadd_ps(av, b1, acc[0][i][1]);
    }
  }
#pragma GCC unroll 4
  for (int u = 1; u < U; ++u)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      acc[0][i][0] = _mm256_add_ps(acc[0][i][0], acc[u][i][0]);
      acc[0][i][1] = _mm256_add_ps(acc[0][i][1], acc[u][i][1]);
    }
  const int n0 = nr < 8 ? nr : 8, n1 = nr - 8;
  const __m256i m0 = mask_for(n0), m1 = mask_for(n1);
  const bool has_bias = ep && ep->bias;
  const __m256 bias0 = has_bias ? load_m(ep->bias + col0, m0, n0) : _mm256_setzero_ps();
  const __m256 bias1 = has_bias && n1 > 0 ? load_m(ep->bias + col0 + 8, m1, n1) : _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
    finish_store(acc[0][i][0], c + i * ldc, m0, n0, ep, bias0, i, col0);
    if (n1 > 0) finish_store(acc[0][i][1], c + i * ldc + 8, m1, n1, ep, bias1, i, col0 + 8);
  }
}

template <int M, int U>
void small_t(int64_t K, const float* a, int64_t lda, const float* bp, int64_t width, float* c, int64_t ldc, int nr,
             const TileEpi* ep) {
  for (int h = 0; h < width / 16 && 16 * h < nr; ++h) {
    const int nh = nr - 16 * h < 16 ? nr - 16 * h : 16;
    small16_t<M, U>(K, a, lda, bp + 16 * h, width, c + 16 * h, ldc, nh, ep, 16 * h);
  }
}

void small_m_avx2(int m, int64_t K, const float* a, int64_t lda, const float* bp, int64_t width, float* c,
                  int64_t ldc, int nr, const TileEpi* ep) {
  switch (m) {
    case 1: return small_t<1, 4>(K, a, lda, bp, width, c, ldc, nr, ep);
    case 2: return small_t<2, 2>(K, a, lda, bp, width, c, ldc, nr, ep);
    case 3: return small_t<3, 1>(K, a, lda, bp, width, c, ldc, nr, ep);
    default: return small_t<4, 1>(K, a, lda, bp, width, c, ldc, nr, ep);
  }
}

void epilogue_avx2(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  for (int64_t j = 0; j < n; j += 8) {
    const int nn = static_cast<int>(n - j < 8 ? n - j : 8);
    const __m256i mk = mask_for(nn);
    const __m256 bias = ep->bias ? load_m(ep->bias + j, mk, nn) : _mm256_setzero_ps();
    for (int i = 0; i < m; ++i) {
      float* dst = c + i * ldc + j;
      finish_store(load_m(dst, mk, nn), dst, mk, nn, ep, bias, i, static_cast<int>(j));
    }
  }
}

// ---------------------------------------------------------------------------------------------- A packing

// 8 x 8 in-register transpose: r[j] becomes column j (lane i = row i).
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// detail::PackAF32 (called with unit k stride only): 8 k at a time, the tile's rows (<= 6) loaded, transposed, and
// the 8 k-rows of mr values stored back to back. A k-row is stored 8 wide where that stays inside the 8 x mr block
// (its lanes past mr fall on the next k-rows, which the next stores overwrite), else mr wide: nothing past the block
// is written. (The portable element-by-element copy took ~6% of a single-thread 128 x 768 x 3072 GEMM, and with N
// split over two threads each of them packs all of A.)
void pack_a_avx2(const float* a, int64_t lda_m, int64_t /*lda_k: 1*/, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                 int max_mr, float* dst) {
  static_assert(kMaxMR <= 8, "a tile's rows must fit one 8 x 8 transpose");
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(mc - t0 < max_mr ? mc - t0 : max_mr);
    float* d = dst + t0 * kc;
    const float* rows = a + (m0 + t0) * lda_m + k0;
    const __m256i last = mask_for(mr);
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) r[i] = i < mr ? _mm256_loadu_ps(rows + i * lda_m + k) : _mm256_setzero_ps();
      transpose8(r);
      float* o = d + k * mr;
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        if (j * mr + 8 <= 8 * mr) _mm256_storeu_ps(o + j * mr, r[j]);
        else _mm256_maskstore_ps(o + j * mr, last, r[j]);
      }
    }
    for (; k < kc; ++k)
      for (int i = 0; i < mr; ++i) d[k * mr + i] = rows[i * lda_m + k];
  }
}

}  // namespace impl_avx2

IsaKernels kernels_avx2() {
  return IsaKernels{impl_avx2::kMaxMR, impl_avx2::micro_avx2, impl_avx2::small_m_avx2, impl_avx2::epilogue_avx2,
                    impl_avx2::pack_a_avx2};
}

}  // namespace lg::gemm::detail
