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

#define LG_VEC_NS vec_avx512
#define LG_VEC_ISA 2
#include "kernels/vec_math.h"

namespace lg::gemm::detail {
namespace impl_avx512 {

constexpr int kMaxMR = 14;
#ifndef LG_GEMV_PREFETCH
#define LG_GEMV_PREFETCH 0
#endif

// The activations: vec_math.h's, the same code the elementwise programs run.
inline __m512 act_ps(__m512 v, int act) { return lg::kernels::vec_avx512::vact(v, act); }

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
  if (ep && act_is_transcendental(ep->act)) {
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

// The prefetch hint is not taken here yet: it was measured on Zen 3 (AVX2) only.
void micro_avx512(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc, int mr, int nr,
                  bool accumulate, const TileEpi* ep, const char*, int64_t) {
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

// detail::PackAF32 (called with unit k stride only): 16 k at a time, up to 16 rows loaded, transposed, stored as 16
// contiguous k-rows of mr values.
void pack_a_avx512(const float* a, int64_t lda_m, int64_t /*lda_k: 1*/, int64_t m0, int64_t mc, int64_t k0,
                   int64_t kc, int max_mr, float* dst) {
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(mc - t0 < max_mr ? mc - t0 : max_mr);
    float* d = dst + t0 * kc;
    const float* rows = a + (m0 + t0) * lda_m + k0;
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
