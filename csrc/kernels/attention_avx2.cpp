// AVX2 variant of the fused attention kernel (compiled with -mavx2 -mfma; entered only via attention.cpp). The
// ISA-independent body (kernels/attention_body.inc) is shared with attention_avx512.cpp and explains the
// algorithm.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/attention.h"

// Named per ISA (the build test tells kernels apart by the _avx2 / _avx512 in their names).
namespace lg::kernels::sdpa_avx2 {
namespace {

struct Simd {
  static constexpr int W = 8;
  static constexpr int kQkRows = 3;  // keys per QK^T register tile (x up to 4 query vectors): 16 ymm registers
  static constexpr int kPvRows = 3;  // queries per P.V register tile (x up to 4 feature vectors)
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256i tail(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail(n)); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, tail(n), v); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  // a < b ? x : y, lane-wise
  static V select_lt(V a, V b, V x, V y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static V round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-126, 127]
  static V pow2i(V n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static V iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  // n <= 8 bools -> 0 where true, -inf where false (lanes past n: -inf)
  static V load_bool(const uint8_t* p, int n) {
    int64_t bytes = 0;
    std::memcpy(&bytes, p, static_cast<size_t>(n));
    const __m256i w = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
    const V off = _mm256_castsi256_ps(_mm256_cmpeq_epi32(w, _mm256_setzero_si256()));
    return _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_set1_ps(-INFINITY), off);
  }
  // r[i] <- column i of the 8 x 8 block whose rows are r[0..7]
  static void transpose(V* r) {
    V t[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {  // r[4i + j], 128-bit lane l: column 4l + j of rows 4i..4i+3
      r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
      t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    for (int j = 0; j < 8; ++j) r[j] = t[j];
  }
};

}  // namespace
}  // namespace lg::kernels::sdpa_avx2

#define LG_SDPA_NS sdpa_avx2
#define LG_SDPA_TASKS_FN sdpa_f32_tasks_avx2
#include "kernels/attention_body.inc"  // NOLINT(build/include)
