// The AVX-512 FMA loop of the peak probe (fma_peak.h), compiled with the AVX-512 flags.
#include <immintrin.h>

#include "kernels/fma_peak.h"

namespace lg::probe {

float fma_loop_avx512(int64_t iters) {
  __m512 acc[kFmaAccumulators];
  for (auto& a : acc) a = _mm512_set1_ps(1.0f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_fmadd_ps(a, x, y);
  }
  __m512 s = acc[0];
  for (int64_t j = 1; j < kFmaAccumulators; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_cvtss_f32(s);
}

}  // namespace lg::probe
