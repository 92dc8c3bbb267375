// AVX-512 variant of the fused attention kernel (compiled with the AVX-512 flag set; entered only via
// attention.cpp). The ISA-independent body is kernels/attention_body.inc, shared with attention_avx2.cpp.
//
// Per task (b, h, block of up to 4 vectors of queries):
//   qt   = (scale * log2 e) * Q_block^T, packed E x BQ (queries along the vector lanes)
//   for each block of up to kBlockK keys:
//     st = K_block . qt            (BK x BQ: one row per key, queries along the lanes; K read in place)
//     st += mask, causal -> -inf;  m_new = max(m, column max);  p = exp2(st - m_new);  l = l * 2^(m - m_new) + sum p
//     o  = o * 2^(m - m_new) + p^T . V_block   (BQ x Ev; V rows read in place, features along the lanes)
//   out = o / l  (0 where l == 0: every key masked)
// With queries on the lanes, the softmax statistics are vertical (lane-wise) max/sum: no horizontal reductions.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/attention.h"
#include "kernels/simd_avx512.h"

// Named per ISA (the build test tells kernels apart by the _avx2 / _avx512 in their names).
namespace lg::kernels::sdpa_avx512 {
namespace {

struct Simd {
  static constexpr int W = 16;
  static constexpr int kQkRows = 6;  // keys per QK^T register tile (x up to 4 query vectors)
  static constexpr int kPvRows = 6;  // queries per P.V register tile (x up to 4 feature vectors)
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static __mmask16 tail(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  // a < b ? x : y, lane-wise
  static V select_lt(V a, V b, V x, V y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }
  static V round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-126, 127]
  static V pow2i(V n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static V iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  // n <= 16 bools -> 0 where true, -inf where false (lanes past n: -inf)
  static V load_bool(const uint8_t* p, int n) {
    const __m128i b = n == W ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                             : _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << n) - 1u), p);
    const __mmask16 off = _mm512_cmpeq_epi32_mask(_mm512_cvtepu8_epi32(b), _mm512_setzero_si512());
    return _mm512_mask_blend_ps(off, _mm512_setzero_ps(), _mm512_set1_ps(-INFINITY));
  }
  // r[i] <- column i of the 16 x 16 block whose rows are r[0..15]
  static void transpose(V* r) {
    V t[16];
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {  // r[4i + j], 128-bit lane l: column 4l + j of rows 4i..4i+3
      r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
      t[j + 4] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
      t[j + 8] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
      t[j + 12] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
      r[4 + j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
      r[8 + j] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0x88);
      r[12 + j] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0xDD);
    }
  }
};

}  // namespace
}  // namespace lg::kernels::sdpa_avx512

#define LG_SDPA_NS sdpa_avx512
#define LG_SDPA_TASKS_FN sdpa_f32_tasks_avx512
// The bf16 variant (vdpbf16ps in functions compiled for AVX512_BF16), entered only when the CPU has AVX512_BF16.
#define LG_SDPA_BF16 1
#define LG_SDPA_BF16_TASKS_FN sdpa_bf16_tasks_avx512
#include "kernels/attention_body.inc"  // NOLINT(build/include)
