// AVX2 convolution micro-kernels (compiled with -mavx2 -mfma; entered only via conv.cpp). Everything here lives in
// namespace impl_avx2 or is named *_avx2, and only declaration headers are included (see conv.h).
#include <immintrin.h>

#include "kernels/conv.h"

#define LG_VEC_NS vec_avx2
#define LG_VEC_ISA 1
#include "kernels/dw_vec.h"

namespace lg::conv {
namespace impl_avx2 {

// Columns [16h, 16h + 16) of the panel for pixels [m0, m0 + MR) of the tile (mr pixels in all).
template <int MR>
void half(const TileArgs& t, int m0, int mr, int h) {
  const int64_t nh = t.n - 16 * h < 16 ? t.n - 16 * h : 16;
  if (nh <= 0) return;
  // The loops over the tile fully unrolled: only then does GCC keep a0/a1 in registers (it stored all 12
  // accumulators to the stack every k step: store-bound at 30 GFLOP/s per core).
  __m256 a0[MR], a1[MR];
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm256_setzero_ps();
  const float* wp = t.w + 16 * h;
  for (int64_t s = 0; s < t.S; ++s) {
    const float* r[MR];
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) r[m] = t.rows[s * mr + m0 + m];
    for (int64_t k = 0; k < t.L; ++k) {
      const __m256 w0 = _mm256_load_ps(wp), w1 = _mm256_load_ps(wp + 8);
      wp += kNR;
#pragma GCC unroll 6
      for (int m = 0; m < MR; ++m) {
        const __m256 b = _mm256_broadcast_ss(r[m] + k);
        a0[m] = _mm256_fmadd_ps(b, w0, a0[m]);
        a1[m] = _mm256_fmadd_ps(b, w1, a1[m]);
      }
    }
  }
  // Spilled once here, so the epilogue's runtime-indexed loop below does not turn a0/a1 into stack arrays that the
  // k loop would then store every step.
  alignas(32) float acc[MR][16];
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) {
    _mm256_store_ps(acc[m], a0[m]);
    _mm256_store_ps(acc[m] + 8, a1[m]);
  }
  alignas(32) float bias[16] = {};
  if (t.bias)
    for (int64_t j = 0; j < nh; ++j) bias[j] = t.bias[16 * h + j];
  const __m256 b0 = _mm256_load_ps(bias), b1 = _mm256_load_ps(bias + 8);
  const __m256 zero = _mm256_setzero_ps();
  const bool fast = t.out_cs == 1 && nh == 16 && (!t.res || t.res_cs == 1);
  for (int m = 0; m < MR; ++m) {
    __m256 v0 = _mm256_add_ps(_mm256_load_ps(acc[m]), b0), v1 = _mm256_add_ps(_mm256_load_ps(acc[m] + 8), b1);
    __m256 r0 = zero, r1 = zero;
    if (t.res) {
      const float* rp = t.res[m0 + m] + 16 * h * t.res_cs;
      if (fast) {
        r0 = _mm256_loadu_ps(rp);
        r1 = _mm256_loadu_ps(rp + 8);
      } else {
        alignas(32) float rb[16] = {};
        for (int64_t j = 0; j < nh; ++j) rb[j] = rp[j * t.res_cs];
        r0 = _mm256_load_ps(rb);
        r1 = _mm256_load_ps(rb + 8);
      }
      if (t.residual_before_act) {
        v0 = _mm256_add_ps(v0, r0);
        v1 = _mm256_add_ps(v1, r1);
      }
    }
    if (t.act == Act::Relu) {  // max(0, v) keeps NaN like torch.relu
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    if (t.res && !t.residual_before_act) {
      v0 = _mm256_add_ps(v0, r0);
      v1 = _mm256_add_ps(v1, r1);
    }
    float* op = t.out[m0 + m] + 16 * h * t.out_cs;
    if (fast) {
      _mm256_storeu_ps(op, v0);
      _mm256_storeu_ps(op + 8, v1);
    } else {
      alignas(32) float ob[16];
      _mm256_store_ps(ob, v0);
      _mm256_store_ps(ob + 8, v1);
      for (int64_t j = 0; j < nh; ++j) op[j * t.out_cs] = ob[j];
    }
  }
}

void rows(const TileArgs& t, int m0, int n, int mr, int h) {
  switch (n) {
    case 1: return half<1>(t, m0, mr, h);
    case 2: return half<2>(t, m0, mr, h);
    case 3: return half<3>(t, m0, mr, h);
    case 4: return half<4>(t, m0, mr, h);
    case 5: return half<5>(t, m0, mr, h);
    default: return half<6>(t, m0, mr, h);
  }
}

}  // namespace impl_avx2

void conv_tile_f32_avx2(const TileArgs& t, int mr) {
  for (int h = 0; h < 2; ++h) {
    // split mr into near-equal blocks of at most 6 pixels
    const int blocks = (mr + 5) / 6;
    for (int b = 0, m0 = 0; b < blocks; ++b) {
      const int n = (mr - m0) / (blocks - b);
      impl_avx2::rows(t, m0, n, mr, h);
      m0 += n;
    }
  }
}

void conv_dw_row_f32_avx2(const DwArgs& a) { kernels::vec_avx2::conv_dw_row(a); }

}  // namespace lg::conv
