// AVX-512 fp32 GEMM kernels (compiled with the AVX-512 flag set; entered only through gemm.cpp's dispatch).
// Everything here lives in namespace impl_avx512 so every emitted function carries "_avx512" in its name.
//
// Micro-kernel: MR x 32 (MR <= 14) tile of C in 2*MR zmm accumulators; per k one broadcast of A per row (embedded
// broadcast operand of the FMA) and two loads of the packed B panel row. The epilogue (bias, residual, activation)
// is applied to the accumulators before the single store. Small M (<= 4) streams a whole B panel with k unrolled
// into independent accumulators (GEMV: memory bound).
#include <immintrin.h>

#include "kernels/gemm.h"
#include "kernels/simd_avx512.h"

namespace lg::gemm::detail {
namespace impl_avx512 {

constexpr int kMaxMR = 14;
#ifndef LG_GEMV_PREFETCH
#define LG_GEMV_PREFETCH 0
#endif

// ---------------------------------------------------------------------------------------------- vector math
// exp: Cody-Waite range reduction, degree-6 polynomial (Cephes), 2^n by scalef (exact overflow to inf / underflow).
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));  // NaN passes through
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// x / (1 + exp(-y)): sigmoid (x = 1), SiLU (y = x), GELU-tanh (y = 2u).
inline __m512 div_one_plus_exp_neg(__m512 x, __m512 y) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), y));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// tanh: rational minimax approximation (Eigen's), |rel err| < 4e-7.
inline __m512 tanh_ps(__m512 x) {
  const __m512 lim = _mm512_set1_ps(7.90531110763549805f);
  x = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), lim), _mm512_min_ps(lim, x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(4.89352455891786e-03f));
  p = _mm512_mul_ps(p, x);
  __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(4.89352518554385e-03f));
  return _mm512_div_ps(p, q);
}

// GELU (erf): x * Phi(x), Phi(-|x|) = erfc(z) / 2 with z = |x| / sqrt 2, written as t * 2^w where
// t = 1 / (1 + z / 2) (rcp14 + one Newton step) and w = P(t) - log2(e) z^2, P a degree-7 fit of
// log2(erfc(z) e^(z^2) / (2 t)) (max error 3.5e-6 in log2 units); 2^w by a degree-5 polynomial and scalef. The
// result is relative-accurate in the tail (no 1 + erf cancellation): |rel err| < 4e-6 over [-120, 120]. About
// 26 vector ops, no division (the erfcc form with a division and a separate exp took ~35).
inline __m512 gelu_erf_ps(__m512 x) {
  const __m512 ax = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(1.0e5f));  // inf -> finite t (NaN: x * ...)
  const __m512 d = _mm512_fmadd_ps(ax, _mm512_set1_ps(0.35355339059327376f), _mm512_set1_ps(1.0f));
  __m512 t = _mm512_rcp14_ps(d);
  t = _mm512_fmadd_ps(_mm512_fnmadd_ps(d, t, _mm512_set1_ps(1.0f)), t, t);
  __m512 p = _mm512_set1_ps(-0.22959448397159576f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.9309322237968445f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.2158112525939941f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.3304748237133026f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.014773591421544552f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5527744889259338f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.4421985149383545f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-2.82574462890625f));
  // w = P(t) - (log2 e / 2) x^2, clamped where 2^w is 0 anyway
  __m512 w = _mm512_fnmadd_ps(_mm512_mul_ps(ax, _mm512_set1_ps(0.72134752044448170f)), ax, p);
  w = _mm512_max_ps(w, _mm512_set1_ps(-151.0f));
  const __m512 n = _mm512_roundscale_ps(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(w, n);
  __m512 q = _mm512_set1_ps(0.0013409988023340702f);
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.009676016867160797f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.05550297349691391f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.2402210831642151f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.6931472420692444f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(1.0000001192092896f));
  const __m512 e = _mm512_scalef_ps(_mm512_mul_ps(q, t), n);  // Phi(-|x|)
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_mul_ps(x, _mm512_mask_sub_ps(e, pos, _mm512_set1_ps(1.0f), e));
}

inline __m512 act_ps(__m512 v, int act) {
  switch (act) {
    case 1: return _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN passes (second operand)
    case 2: return gelu_erf_ps(v);
    case 3: {
      const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
      const __m512 u = _mm512_mul_ps(_mm512_fmadd_ps(v3, _mm512_set1_ps(0.044715f), v),
                                     _mm512_set1_ps(2.0f * 0.79788456080286536f));
      return div_one_plus_exp_neg(v, u);
    }
    case 4: return div_one_plus_exp_neg(v, v);
    case 5: return tanh_ps(v);
    case 6: return div_one_plus_exp_neg(_mm512_set1_ps(1.0f), v);
    default: return v;
  }
}

using simd_avx512::tail_mask;

// v (columns [16 * vi, 16 * vi + 16) of row `row` in the tile) -> epilogue -> store at dst.
inline void finish_store(__m512 v, float* dst, __mmask16 m, const TileEpi* ep, __m512 bias, int row, int col) {
  if (ep) {
    v = _mm512_add_ps(v, bias);
    const float* res = ep->residual ? ep->residual + row * ep->ld_residual + col : nullptr;
    if (res && ep->residual_before_act) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
    v = act_ps(v, ep->act);
    if (res && !ep->residual_before_act) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
  }
  _mm512_mask_storeu_ps(dst, m, v);
}

__attribute__((noinline)) void epilogue_avx512(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep);

// ---------------------------------------------------------------------------------------------- micro-kernel
template <int MR, int NV>
void micro_t(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, int nr,
             bool accumulate, const TileEpi* ep) {
  constexpr int W = 16 * NV;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(bp + k * W + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[k * MR + i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
  }
  __mmask16 m[NV];
  __m512 bias[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    m[v] = tail_mask(nr - 16 * v);
    bias[v] = ep && ep->bias ? _mm512_maskz_loadu_ps(m[v], ep->bias + 16 * v) : _mm512_setzero_ps();
  }
  if (ep && ep->act >= 2) {
    // A transcendental activation needs ~20 constants: with 2 * MR accumulators live they would spill (measured:
    // GELU at 1 ns/element in place vs 0.5 as a pass). Store the tile, then one epilogue pass over it in L1.
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        float* dst = c + i * ldc + 16 * v;
        __m512 r = acc[i][v];
        if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], dst));
        _mm512_mask_storeu_ps(dst, m[v], r);
      }
    }
    epilogue_avx512(c, ldc, MR, nr, ep);
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* dst = c + i * ldc + 16 * v;
      __m512 r = acc[i][v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], dst));
      finish_store(r, dst, m[v], ep, bias[v], i, 16 * v);
    }
  }
}

void micro_avx512(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc, int mr, int nr,
                  bool accumulate, const TileEpi* ep) {
  const auto* a = static_cast<const float*>(ap);
  const auto* b = static_cast<const float*>(bp);
#define LG_MICRO_CASE(R)                                                                  \
  case R:                                                                                 \
    if (width == 16) return micro_t<R, 1>(kc, a, b, c, ldc, nr, accumulate, ep);          \
    return micro_t<R, 2>(kc, a, b, c, ldc, nr, accumulate, ep);
  switch (mr) {
    LG_MICRO_CASE(1) LG_MICRO_CASE(2) LG_MICRO_CASE(3) LG_MICRO_CASE(4) LG_MICRO_CASE(5) LG_MICRO_CASE(6)
    LG_MICRO_CASE(7) LG_MICRO_CASE(8) LG_MICRO_CASE(9) LG_MICRO_CASE(10) LG_MICRO_CASE(11) LG_MICRO_CASE(12)
    LG_MICRO_CASE(13)
    default: LG_MICRO_CASE(14)
  }
#undef LG_MICRO_CASE
}

// ---------------------------------------------------------------------------------------------- small M (GEMV)
// M rows (<= 4) over one panel of K rows; U independent accumulator sets over k keep enough FMAs in flight.
template <int M, int NV, int U>
void small_t(int64_t K, const float* __restrict a, int64_t lda, const float* __restrict bp, float* c, int64_t ldc,
             int nr, const TileEpi* ep) {
  constexpr int W = 16 * NV;
  __m512 acc[U][M][NV];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[u][i][v] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + U <= K; k += U) {
#if LG_GEMV_PREFETCH
#pragma GCC unroll 8
    for (int l = 0; l < U * W / 16; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(bp + (k + LG_GEMV_PREFETCH) * W + 16 * l), _MM_HINT_T0);
#endif
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const __m512 av = _mm512_set1_ps(a[i * lda + k + u]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
          acc[u][i][v] = _mm512_fmadd_ps(av, _mm512_load_ps(bp + (k + u) * W + 16 * v), acc[u][i][v]);
      }
    }
  }
  for (; k < K; ++k) {
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[0][i][v] = _mm512_fmadd_ps(av, _mm512_load_ps(bp + k * W + 16 * v), acc[0][i][v]);
    }
  }
#pragma GCC unroll 4
  for (int u = 1; u < U; ++u)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[0][i][v] = _mm512_add_ps(acc[0][i][v], acc[u][i][v]);
  __mmask16 m[NV];
  __m512 bias[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    m[v] = tail_mask(nr - 16 * v);
    bias[v] = ep && ep->bias ? _mm512_maskz_loadu_ps(m[v], ep->bias + 16 * v) : _mm512_setzero_ps();
  }
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) finish_store(acc[0][i][v], c + i * ldc + 16 * v, m[v], ep, bias[v], i, 16 * v);
}

void small_m_avx512(int m, int64_t K, const float* a, int64_t lda, const float* bp, int64_t width, float* c,
                    int64_t ldc, int nr, const TileEpi* ep) {
  if (width == 16) {
    switch (m) {
      case 1: return small_t<1, 1, 8>(K, a, lda, bp, c, ldc, nr, ep);
      case 2: return small_t<2, 1, 4>(K, a, lda, bp, c, ldc, nr, ep);
      case 3: return small_t<3, 1, 2>(K, a, lda, bp, c, ldc, nr, ep);
      default: return small_t<4, 1, 2>(K, a, lda, bp, c, ldc, nr, ep);
    }
  }
  switch (m) {
    case 1: return small_t<1, 2, 4>(K, a, lda, bp, c, ldc, nr, ep);
    case 2: return small_t<2, 2, 2>(K, a, lda, bp, c, ldc, nr, ep);
    case 3: return small_t<3, 2, 2>(K, a, lda, bp, c, ldc, nr, ep);
    default: return small_t<4, 2, 1>(K, a, lda, bp, c, ldc, nr, ep);
  }
}

// ---------------------------------------------------------------------------------------------- epilogue pass
// Row by row, four independent vectors per step (one activation's dependency chain is ~25 ops deep; four in
// flight keep both FP pipes busy); the activation is a template argument, so no per-vector dispatch.
template <int ACT>
void epilogue_t(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  const bool before = ep->residual_before_act != 0;
  const float* bias = ep->bias;
  auto one = [&](float* dst, const float* res, int64_t j, __mmask16 mk) {
    __m512 v = _mm512_maskz_loadu_ps(mk, dst);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + j));
    if (res && before) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res));
    v = act_ps(v, ACT);
    if (res && !before) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res));
    _mm512_mask_storeu_ps(dst, mk, v);
  };
  // The m x nv vectors in one flat sequence (a micro-tile row is only 2 vectors wide), four per step.
  const int64_t nv = (n + 15) / 16, total = m * nv;
  const __mmask16 last = tail_mask(static_cast<int>(n - (nv - 1) * 16));
  auto at = [&](int64_t q) {
    const int64_t i = q / nv, j = (q - i * nv) * 16;
    one(c + i * ldc + j, ep->residual ? ep->residual + i * ep->ld_residual + j : nullptr, j,
        j + 16 > n ? last : __mmask16(0xffff));
  };
  int64_t q = 0;
  for (; q + 4 <= total; q += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) at(q + u);
  }
  for (; q < total; ++q) at(q);
}

void epilogue_avx512(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  switch (ep->act) {
    case 1: return epilogue_t<1>(c, ldc, m, n, ep);
    case 2: return epilogue_t<2>(c, ldc, m, n, ep);
    case 3: return epilogue_t<3>(c, ldc, m, n, ep);
    case 4: return epilogue_t<4>(c, ldc, m, n, ep);
    case 5: return epilogue_t<5>(c, ldc, m, n, ep);
    case 6: return epilogue_t<6>(c, ldc, m, n, ep);
    default: return epilogue_t<0>(c, ldc, m, n, ep);
  }
}

// ---------------------------------------------------------------------------------------------- A packing

// detail::PackAF32: 16 k at a time, up to 16 rows loaded, transposed, stored as 16 contiguous k-rows of mr values.
void pack_a_avx512(const float* a, int64_t lda_m, int64_t lda_k, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                   int max_mr, float* dst) {
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(mc - t0 < max_mr ? mc - t0 : max_mr);
    float* d = dst + t0 * kc;
    const float* rows = a + (m0 + t0) * lda_m + k0 * lda_k;
    if (lda_k != 1) {
      for (int i = 0; i < mr; ++i)
        for (int64_t k = 0; k < kc; ++k) d[k * mr + i] = rows[i * lda_m + k * lda_k];
      continue;
    }
    const __mmask16 sm = tail_mask(mr);
    for (int64_t k = 0; k < kc; k += 16) {
      const int kk = static_cast<int>(kc - k < 16 ? kc - k : 16);
      const __mmask16 lm = tail_mask(kk);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = i < mr ? _mm512_maskz_loadu_ps(lm, rows + i * lda_m + k) : _mm512_setzero_ps();
      simd_avx512::transpose16(r);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        if (j < kk) _mm512_mask_storeu_ps(d + (k + j) * mr, sm, r[j]);
    }
  }
}

}  // namespace impl_avx512

IsaKernels kernels_avx512() {
  return IsaKernels{impl_avx512::kMaxMR, impl_avx512::micro_avx512, impl_avx512::small_m_avx512,
                    impl_avx512::epilogue_avx512, impl_avx512::pack_a_avx512};
}

}  // namespace lg::gemm::detail
