// AVX-512 channels-last pooling kernels (compiled with the AVX-512 flag set; entered only via pool.cpp).
#include <immintrin.h>

#include "kernels/conv.h"
#include "kernels/simd_avx512.h"

namespace lg::conv {
namespace impl_pool_avx512 {

using simd_avx512::tail_mask;

// max over in[i][c..c+16), NaN-propagating like torch (a NaN anywhere in the window gives NaN)
inline void max_block(const float* const* in, int64_t n_in, int64_t c, __mmask16 mk, float* out) {
  __m512 acc = _mm512_set1_ps(-__builtin_inff());
  __mmask16 nan = 0;
  for (int64_t i = 0; i < n_in; ++i) {
    const __m512 v = _mm512_maskz_loadu_ps(mk, in[i] + c);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    acc = _mm512_max_ps(acc, v);
  }
  acc = _mm512_mask_mov_ps(acc, nan, _mm512_set1_ps(__builtin_nanf("")));
  _mm512_mask_storeu_ps(out + c, mk, acc);
}

}  // namespace impl_pool_avx512

void pool_max_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float* out) {
  using namespace impl_pool_avx512;
  for (int64_t c = 0; c < C; c += 16) max_block(in, n_in, c, tail_mask(C - c), out);
}

void pool_avg_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float scale, float* out) {
  using namespace impl_pool_avx512;
  const __m512 sc = _mm512_set1_ps(scale);
  int64_t c = 0;
  for (; c + 64 <= C; c += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n_in; ++i) {
      const float* p = in[i] + c;
      a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p));
      a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + 16));
      a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + 32));
      a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + 48));
    }
    _mm512_storeu_ps(out + c, _mm512_mul_ps(a0, sc));
    _mm512_storeu_ps(out + c + 16, _mm512_mul_ps(a1, sc));
    _mm512_storeu_ps(out + c + 32, _mm512_mul_ps(a2, sc));
    _mm512_storeu_ps(out + c + 48, _mm512_mul_ps(a3, sc));
  }
  for (; c < C; c += 16) {
    const __mmask16 mk = tail_mask(C - c);
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_in; ++i) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk, in[i] + c));
    _mm512_mask_storeu_ps(out + c, mk, _mm512_mul_ps(a, sc));
  }
}

}  // namespace lg::conv
