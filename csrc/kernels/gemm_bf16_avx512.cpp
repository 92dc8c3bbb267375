// AVX512_BF16 mixed-precision GEMM kernels (vdpbf16ps): B pre-packed as bf16 k-pairs, A rounded to bf16 pairs while
// packing, fp32 accumulation. The unit is compiled with the AVX-512 F+BW+VL set; the micro-kernel alone is compiled
// for AVX512_BF16 (LG_TARGET_AVX512BF16), entered only when the CPU reports it; the packing rounds with AVX-512F.
// Namespace impl_bf16_avx512 keeps "_avx512" and "bf16" in every emitted function's name.
#include <immintrin.h>

#include "kernels/gemm.h"
#include "kernels/simd_avx512.h"

namespace lg::gemm::detail {
namespace impl_bf16_avx512 {

constexpr int kMaxMR = 14;

using simd_avx512::tail_mask;

// MR x (16 * NV) tile; kc k-pairs. Each vdpbf16ps does 2 k-steps on 16 columns.
template <int MR, int NV>
LG_TARGET_AVX512BF16 void micro_t(int64_t kc, const uint32_t* __restrict ap, const uint32_t* __restrict bp, float* c, int64_t ldc, int nr,
             bool accumulate, const TileEpi* ep) {
  constexpr int W = 16 * NV;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512i b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_si512(bp + k * W + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i a = _mm512_set1_epi32(static_cast<int>(ap[k * MR + i]));
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)a, (__m512bh)b[v]);
    }
  }
  __mmask16 m[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) m[v] = tail_mask(nr - 16 * v);
  // Bias, residual and ReLU in registers before the single store; other activations by the fp32 kernels' vector
  // epilogue pass on the tile just stored (still in L1).
  const bool in_regs = ep && ep->act <= 1;
  __m512 bias[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v)
    bias[v] = in_regs && ep->bias ? _mm512_maskz_loadu_ps(m[v], ep->bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* dst = c + i * ldc + 16 * v;
      __m512 r = acc[i][v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], dst));
      if (in_regs) {
        r = _mm512_add_ps(r, bias[v]);
        const float* res = ep->residual ? ep->residual + i * ep->ld_residual + 16 * v : nullptr;
        if (res && ep->residual_before_act) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], res));
        if (ep->act == static_cast<int>(Act::Relu)) r = _mm512_max_ps(_mm512_setzero_ps(), r);
        if (res && !ep->residual_before_act) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], res));
      }
      _mm512_mask_storeu_ps(dst, m[v], r);
    }
  }
  if (ep && !in_regs) kernels_avx512().epilogue(c, ldc, MR, nr, ep);
}

LG_TARGET_AVX512BF16 void micro_bf16_avx512(int64_t kc, const void* ap, const void* bp, int64_t width, float* c,
                                             int64_t ldc, int mr, int nr, bool accumulate, const TileEpi* ep,
                                             const char*, int64_t) {
  const auto* a = static_cast<const uint32_t*>(ap);
  const auto* b = static_cast<const uint32_t*>(bp);
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


// Up to 16 rows x 16 k-pairs at a time: each row's 32 floats -> 16 bf16 pairs (round to nearest even) in one
// register, the 16 x 16 block of pairs transposed in registers, stored as 16 pair-rows of mr words.
void pack_a_bf16_avx512(const float* a, int64_t lda, int64_t K, int64_t m0, int64_t mc, int64_t kp0, int64_t kc2,
                        int max_mr, uint32_t* dst) {
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(mc - t0 < max_mr ? mc - t0 : max_mr);
    uint32_t* d = dst + t0 * kc2;
    const float* rows = a + (m0 + t0) * lda;
    const __mmask16 sm = tail_mask(mr);
    for (int64_t kp = 0; kp < kc2; kp += 16) {
      const int64_t k = 2 * (kp0 + kp);
      const int64_t left = K - k;
      const __mmask16 lo = tail_mask(static_cast<int>(left < 16 ? left : 16));
      const __mmask16 hi = tail_mask(static_cast<int>(left - 16 < 16 ? left - 16 : 16));
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        if (i < mr) {
          const float* src = rows + i * lda + k;
          const __m512 x0 = _mm512_maskz_loadu_ps(lo, src);
          const __m512 x1 = _mm512_maskz_loadu_ps(hi, src + 16);
          r[i] = _mm512_castsi512_ps(simd_avx512::f32_to_bf16x32(x1, x0));
        } else {
          r[i] = _mm512_setzero_ps();
        }
      }
      simd_avx512::transpose16(r);
      const int n = static_cast<int>(kc2 - kp < 16 ? kc2 - kp : 16);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        if (j < n) _mm512_mask_storeu_ps(reinterpret_cast<float*>(d + (kp + j) * mr), sm, r[j]);
    }
  }
}

}  // namespace impl_bf16_avx512

IsaKernelsBf16 kernels_bf16_avx512() {
  return IsaKernelsBf16{impl_bf16_avx512::kMaxMR, impl_bf16_avx512::micro_bf16_avx512,
                        impl_bf16_avx512::pack_a_bf16_avx512};
}

}  // namespace lg::gemm::detail
