// The AVX2 FMA loop of the peak probe (fma_peak.h), compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "kernels/fma_peak.h"

namespace lg::probe {

float fma_loop_avx2(int64_t iters) {
  __m256 acc[kFmaAccumulators];
  for (auto& a : acc) a = _mm256_set1_ps(1.0f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm256_fmadd_ps(a, x, y);
  }
  __m256 s = acc[0];
  for (int64_t j = 1; j < kFmaAccumulators; ++j) s = _mm256_add_ps(s, acc[j]);
  return _mm256_cvtss_f32(s);
}

}  // namespace lg::probe
