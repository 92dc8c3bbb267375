// AVX-512 variants of the elementwise f32 kernels (compiled with the AVX-512 flag set; entered only via
// eltwise.cpp). Include nothing from common/: see eltwise.h for why.
#include <immintrin.h>

#include "kernels/eltwise.h"

namespace lg::kernels {
namespace {

inline __mmask16 tail_mask_avx512(int64_t remaining) {
  return static_cast<__mmask16>((1u << remaining) - 1u);
}

}  // namespace

void relu_f32_avx512(const float* x, float* y, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t i = 0;
  // max_ps(0, x) returns x when x is NaN or -0.0, matching torch.relu.
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
    _mm512_storeu_ps(y + i, _mm512_max_ps(zero, v0));
    _mm512_storeu_ps(y + i + 16, _mm512_max_ps(zero, v1));
    _mm512_storeu_ps(y + i + 32, _mm512_max_ps(zero, v2));
    _mm512_storeu_ps(y + i + 48, _mm512_max_ps(zero, v3));
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_max_ps(zero, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask_avx512(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(zero, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void add_f32_avx512(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 s0 = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 s1 = _mm512_add_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    const __m512 s2 = _mm512_add_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    const __m512 s3 = _mm512_add_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    _mm512_storeu_ps(y + i, s0);
    _mm512_storeu_ps(y + i + 16, s1);
    _mm512_storeu_ps(y + i + 32, s2);
    _mm512_storeu_ps(y + i + 48, s3);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
  if (i < n) {
    const __mmask16 m = tail_mask_avx512(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

}  // namespace lg::kernels
