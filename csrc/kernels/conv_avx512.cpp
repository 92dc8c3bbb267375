// AVX-512 convolution micro-kernels (compiled with the AVX-512 flag set; entered only via conv.cpp). Everything
// here lives in namespace impl_avx512 or is named *_avx512 (tests/test_build.py checks where zmm code appears),
// and only declaration headers are included (see conv.h).
#include <immintrin.h>

#include "kernels/conv.h"
#include "kernels/simd_avx512.h"

#define LG_VEC_NS vec_avx512
#define LG_VEC_ISA 2
#include "kernels/dw_vec.h"

namespace lg::conv {
namespace impl_avx512 {

using simd_avx512::f32_to_bf16x16;
using simd_avx512::tail_mask;

// Channel strides up to this use 32-bit gather/scatter offsets (15 * stride must fit an int32).
constexpr int64_t kMaxGatherStride = int64_t(1) << 27;

inline __m512 load_cols(const float* p, int64_t cs, __mmask16 m, __m512i idx) {
  if (cs == 1) return _mm512_maskz_loadu_ps(m, p);
  if (cs <= kMaxGatherStride) return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, p, 4);
  alignas(64) float b[16] = {};
  for (int j = 0; j < 16; ++j)
    if (m >> j & 1) b[j] = p[j * cs];
  return _mm512_load_ps(b);
}

inline void store_cols(float* p, int64_t cs, __mmask16 m, __m512i idx, __m512 v) {
  if (cs == 1) {
    _mm512_mask_storeu_ps(p, m, v);
  } else if (cs <= kMaxGatherStride) {
    _mm512_mask_i32scatter_ps(p, m, idx, v, 4);
  } else {
    alignas(64) float b[16];
    _mm512_store_ps(b, v);
    for (int j = 0; j < 16; ++j)
      if (m >> j & 1) p[j * cs] = b[j];
  }
}

// The epilogue on the register tile: + bias, (+ residual), relu, (+ residual), stored with the output's strides.
template <int MR>
inline void store_tile(const TileArgs& t, const __m512* a0, const __m512* a1) {
  const __mmask16 m0 = tail_mask(t.n), m1 = tail_mask(t.n - 16);
  const __m512 b0 = t.bias ? _mm512_maskz_loadu_ps(m0, t.bias) : _mm512_setzero_ps();
  const __m512 b1 = t.bias ? _mm512_maskz_loadu_ps(m1, t.bias + 16) : _mm512_setzero_ps();
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // gather/scatter offsets for strided channels (the second half's base pointer is already 16 channels on)
  const __m512i oi = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(t.out_cs)));
  const __m512i ri = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(t.res_cs)));
  const bool relu = t.act == Act::Relu;
  const __m512 zero = _mm512_setzero_ps();
  for (int m = 0; m < MR; ++m) {
    __m512 v0 = _mm512_add_ps(a0[m], b0), v1 = _mm512_add_ps(a1[m], b1);
    __m512 r0 = zero, r1 = zero;
    if (t.res) {
      r0 = load_cols(t.res[m], t.res_cs, m0, ri);
      r1 = load_cols(t.res[m] + 16 * t.res_cs, t.res_cs, m1, ri);
      if (t.residual_before_act) {
        v0 = _mm512_add_ps(v0, r0);
        v1 = _mm512_add_ps(v1, r1);
      }
    }
    if (relu) {  // max(0, v) keeps NaN like torch.relu
      v0 = _mm512_max_ps(zero, v0);
      v1 = _mm512_max_ps(zero, v1);
    }
    if (t.res && !t.residual_before_act) {
      v0 = _mm512_add_ps(v0, r0);
      v1 = _mm512_add_ps(v1, r1);
    }
    store_cols(t.out[m], t.out_cs, m0, oi, v0);
    if (t.n > 16) store_cols(t.out[m] + 16 * t.out_cs, t.out_cs, m1, oi, v1);
  }
}

// acc[m][0..1] (+)= sum over segments and k of rows[s][m][k] * w[k][0..31]
template <int MR>
void tile(const TileArgs& t) {
  __m512 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
  const float* wp = t.w;
  const int64_t L = t.L;
  for (int64_t s = 0; s < t.S; ++s) {
    const float* r[MR];
    for (int m = 0; m < MR; ++m) r[m] = t.rows[s * MR + m];
    for (int64_t k = 0; k < L; ++k) {
      const __m512 w0 = _mm512_load_ps(wp), w1 = _mm512_load_ps(wp + 16);
      wp += kNR;
      for (int m = 0; m < MR; ++m) {
        const __m512 b = _mm512_set1_ps(r[m][k]);
        a0[m] = _mm512_fmadd_ps(b, w0, a0[m]);
        a1[m] = _mm512_fmadd_ps(b, w1, a1[m]);
      }
    }
  }
  store_tile<MR>(t, a0, a1);
}

// The bf16 tile: rows hold bf16 values, each step broadcasts one (k, k+1) pair against a row of weight pairs.
// vdpbf16ps: this function alone is compiled for AVX512_BF16 (entered only where the CPU has it).
template <int MR>
LG_TARGET_AVX512BF16 void tile_bf16(const TileArgs& t) {
  __m512 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm512_setzero_ps();
  const auto* wp = reinterpret_cast<const uint32_t*>(t.w);
  const int64_t L2 = t.L / 2;
  for (int64_t s = 0; s < t.S; ++s) {
    const int32_t* r[MR];
    for (int m = 0; m < MR; ++m) r[m] = reinterpret_cast<const int32_t*>(t.rows[s * MR + m]);
    for (int64_t k = 0; k < L2; ++k) {
      const __m512bh w0 = (__m512bh)_mm512_load_si512(wp), w1 = (__m512bh)_mm512_load_si512(wp + 16);
      wp += kNR;
      for (int m = 0; m < MR; ++m) {
        const __m512bh b = (__m512bh)_mm512_set1_epi32(r[m][k]);
        a0[m] = _mm512_dpbf16_ps(a0[m], b, w0);
        a1[m] = _mm512_dpbf16_ps(a1[m], b, w1);
      }
    }
  }
  store_tile<MR>(t, a0, a1);
}

}  // namespace impl_avx512

void conv_tile_f32_avx512(const TileArgs& t, int mr) {
  using namespace impl_avx512;
  switch (mr) {
    case 1: return tile<1>(t);
    case 2: return tile<2>(t);
    case 3: return tile<3>(t);
    case 4: return tile<4>(t);
    case 5: return tile<5>(t);
    case 6: return tile<6>(t);
    case 7: return tile<7>(t);
    case 8: return tile<8>(t);
    case 9: return tile<9>(t);
    case 10: return tile<10>(t);
    case 11: return tile<11>(t);
    case 12: return tile<12>(t);
    case 13: return tile<13>(t);
    case 14: return tile<14>(t);
    default: return;
  }
}

LG_TARGET_AVX512BF16 void conv_tile_bf16_avx512(const TileArgs& t, int mr) {
  using namespace impl_avx512;
  switch (mr) {
    case 1: return tile_bf16<1>(t);
    case 2: return tile_bf16<2>(t);
    case 3: return tile_bf16<3>(t);
    case 4: return tile_bf16<4>(t);
    case 5: return tile_bf16<5>(t);
    case 6: return tile_bf16<6>(t);
    case 7: return tile_bf16<7>(t);
    case 8: return tile_bf16<8>(t);
    case 9: return tile_bf16<9>(t);
    case 10: return tile_bf16<10>(t);
    case 11: return tile_bf16<11>(t);
    case 12: return tile_bf16<12>(t);
    case 13: return tile_bf16<13>(t);
    case 14: return tile_bf16<14>(t);
    default: return;
  }
}

void f32_to_bf16_avx512(const float* src, int64_t n, uint16_t* dst) {
  using namespace impl_avx512;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), f32_to_bf16x16(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(dst + i, m, f32_to_bf16x16(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

void conv_dw_row_f32_avx512(const DwArgs& a) { kernels::vec_avx512::conv_dw_row(a); }

}  // namespace lg::conv
