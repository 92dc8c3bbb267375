// AVX2 Winograd transforms (compiled with -mavx2 -mfma; entered only via winograd.cpp). The bodies are shared with
// the other units (winograd_body.inc); everything here lives in impl_avx2 or is named *_avx2.
#include <immintrin.h>

#include "kernels/winograd.h"

namespace lg::conv {
namespace impl_avx2 {

struct V {
  static constexpr int W = 8;
  using reg = __m256;
  static __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float f) { return _mm256_set1_ps(f); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg load(const float* p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, int64_t n, reg v) {
    if (n >= 8) {
      _mm256_storeu_ps(p, v);
    } else {
      _mm256_maskstore_ps(p, mask(n), v);
    }
  }
  static void store_bf16(uint16_t*, int64_t, reg) {}  // never instantiated (bf16 runs on AVX-512 or portably)
};

#include "kernels/winograd_body.inc"

}  // namespace impl_avx2

void wino_in_f32_avx2(const WinoIn& a) {
  using namespace impl_avx2;
  return a.alpha == 6 ? wino_in_body<V, 6, false>(a) : wino_in_body<V, 4, false>(a);
}
void wino_out_avx2(const WinoOut& a) {
  using namespace impl_avx2;
  return a.alpha == 6 ? wino_out_body<V, 6>(a) : wino_out_body<V, 4>(a);
}

}  // namespace lg::conv
