// AVX-512 VNNI int8 GEMM kernels (the *_avx512vnni.cpp units are compiled with AVX-512 F+BW+VL and VNNI; entered
// only through gemm_int8.cpp's dispatch, where the CPU has VNNI). Everything lives in namespace impl_avx512vnni so
// every emitted function carries "_avx512vnni" in its name (tests/test_build.py: VNNI instructions appear nowhere
// else).
//
// Micro-kernel: MR x 32 tile of int32 sums in 2*MR zmm accumulators (MR <= 12); per 4-byte k group one broadcast
// of the row's 4 u8 per row and two loads of the panel's 32 columns x 4 s8, each pair multiplied and summed into
// the accumulators by vpdpbusd (64 multiply-adds per instruction, exact in int32). Dequantisation and the fp32
// epilogue follow on the tile before it leaves registers' neighbourhood (one store, then the epilogue in L1).
#include <immintrin.h>

#include "kernels/gemm_int8.h"
#include "kernels/simd_avx512.h"

namespace lg::gemm::detail {
namespace impl_avx512vnni {

using lg::simd_avx512::tail_mask;

constexpr int kMaxMR = 12;

template <int MR, int NV>
void micro_t(int64_t groups, const uint32_t* __restrict ap, const int8_t* __restrict bp, int width, int nr, const DequantTile* dq,
             float* c, int64_t ldc, int32_t* raw) {
  // Every loop over the tile fully unrolled (as in the fp32 micro-kernel): only then does GCC keep acc in
  // registers; a rolled loop over v made it store the accumulators to the stack every k group (measured 2x).
  __m512i acc[MR][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const int64_t step = int64_t(width) * 4;
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* b = bp + g * step;
    __m512i bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + 64 * v);
    const uint32_t* a = ap + g * MR;
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(a[i]));
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, bv[v]);
    }
  }
  const __mmask16 m0 = tail_mask(nr), m1 = tail_mask(nr - 16);
  if (raw) {
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      _mm512_mask_storeu_epi32(raw + i * ldc, m0, acc[i][0]);
      if (NV > 1) _mm512_mask_storeu_epi32(raw + i * ldc + 16, m1, acc[i][NV - 1]);
    }
    return;
  }
  __m512i cs[NV];
  __m512 sb[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    cs[v] = _mm512_maskz_loadu_epi32(v ? m1 : m0, dq->colsum + 16 * v);
    sb[v] = _mm512_maskz_loadu_ps(v ? m1 : m0, dq->sb + 16 * v);
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    const __m512i z = _mm512_set1_epi32(dq->z[i]);
    const __m512 s = _mm512_set1_ps(dq->s[i]);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      // (acc - z * colsum) is exact in int32 (see gemm_int8.h); s * sb is rounded once, as in the reference
      const __m512i d = _mm512_sub_epi32(acc[i][v], _mm512_mullo_epi32(z, cs[v]));
      const __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, sb[v]));
      _mm512_mask_storeu_ps(c + i * ldc + 16 * v, v ? m1 : m0, y);
    }
  }
}

template <int NV>
void micro_nv(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr, const DequantTile* dq,
              float* c, int64_t ldc, int32_t* raw) {
  switch (mr) {
#define LG_CASE(n) \
  case n: return micro_t<n, NV>(groups, ap, bp, width, nr, dq, c, ldc, raw);
    LG_CASE(1) LG_CASE(2) LG_CASE(3) LG_CASE(4) LG_CASE(5) LG_CASE(6)
    LG_CASE(7) LG_CASE(8) LG_CASE(9) LG_CASE(10) LG_CASE(11)
#undef LG_CASE
    default: return micro_t<12, NV>(groups, ap, bp, width, nr, dq, c, ldc, raw);
  }
}

void micro_s8_avx512(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr,
                     const DequantTile* dq, float* c, int64_t ldc, const TileEpi* ep, int32_t* raw) {
  if (width > 16)
    micro_nv<2>(groups, ap, bp, width, mr, nr, dq, c, ldc, raw);
  else
    micro_nv<1>(groups, ap, bp, width, mr, nr, dq, c, ldc, raw);
  if (!raw && ep) kernels_avx512().epilogue(c, ldc, mr, nr, ep);
}

void minmax_avx512(const float* a, int64_t K, float* mn, float* mx) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 x = _mm512_loadu_ps(a + k);
    lo = _mm512_min_ps(x, lo);  // min_ps(x, lo) returns lo when x is NaN: NaN is skipped like fmin
    hi = _mm512_max_ps(x, hi);
  }
  if (k < K) {
    const __mmask16 t = tail_mask(K - k);
    const __m512 x = _mm512_maskz_loadu_ps(t, a + k);  // masked lanes read as 0, inside [lo, hi] already
    lo = _mm512_min_ps(x, lo);
    hi = _mm512_max_ps(x, hi);
  }
  *mn = _mm512_reduce_min_ps(lo);
  *mx = _mm512_reduce_max_ps(hi);
}

void quant_avx512(const float* a, int64_t K, float inv, int32_t z, uint8_t* q) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vz = _mm512_set1_epi32(z), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
  const __m512 lo = _mm512_set1_ps(-256.0f), hi = _mm512_set1_ps(511.0f);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 t = tail_mask(K - k);
    const __m512 x = _mm512_maskz_loadu_ps(t, a + k);
    // clamped to [-256, 511] first (max_ps returns its second operand for NaN: NaN -> -256 -> 0, as the scalar
    // path), then cvtps rounds to nearest even, as nearbyint
    const __m512 y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, vinv), lo), hi);
    __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(y), vz);
    v = _mm512_min_epi32(_mm512_max_epi32(v, zero), top);
    _mm_mask_storeu_epi8(q + k, t, _mm512_cvtepi32_epi8(v));
  }
}

}  // namespace impl_avx512vnni

IsaKernelsS8 kernels_s8_avx512vnni() {
  return IsaKernelsS8{impl_avx512vnni::kMaxMR, impl_avx512vnni::micro_s8_avx512, impl_avx512vnni::minmax_avx512,
                      impl_avx512vnni::quant_avx512, kernels_avx512().epilogue};
}

}  // namespace lg::gemm::detail
