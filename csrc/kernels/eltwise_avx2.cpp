// AVX2+FMA variants of the elementwise f32 kernels (compiled with -mavx2 -mfma; entered only via eltwise.cpp).
// Include nothing from common/: see eltwise.h for why.
#include <immintrin.h>

#include "kernels/eltwise.h"

namespace lg::kernels {

void relu_f32_avx2(const float* x, float* y, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  // max_ps(0, x) returns x when x is NaN or -0.0, matching torch.relu.
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    _mm256_storeu_ps(y + i, _mm256_max_ps(zero, v0));
    _mm256_storeu_ps(y + i + 8, _mm256_max_ps(zero, v1));
    _mm256_storeu_ps(y + i + 16, _mm256_max_ps(zero, v2));
    _mm256_storeu_ps(y + i + 24, _mm256_max_ps(zero, v3));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void add_f32_avx2(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 s0 = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 s1 = _mm256_add_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    const __m256 s2 = _mm256_add_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    const __m256 s3 = _mm256_add_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    _mm256_storeu_ps(y + i, s0);
    _mm256_storeu_ps(y + i + 8, s1);
    _mm256_storeu_ps(y + i + 16, s2);
    _mm256_storeu_ps(y + i + 24, s3);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace lg::kernels
