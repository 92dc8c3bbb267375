// AVX-512 Winograd transforms (compiled with the AVX-512 flag set; entered only via winograd.cpp). The bodies are
// shared with the other units (winograd_body.inc); everything here lives in impl_avx512 or is named *_avx512.
#include <immintrin.h>

#include "kernels/simd_avx512.h"
#include "kernels/winograd.h"

namespace lg::conv {
namespace impl_avx512 {

struct V {
  static constexpr int W = 16;
  using reg = __m512;
  static __mmask16 mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float f) { return _mm512_set1_ps(f); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg load(const float* p, int64_t n) {
    return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask(n), p);
  }
  static void store(float* p, int64_t n, reg v) {
    if (n >= 16) {
      _mm512_storeu_ps(p, v);
    } else {
      _mm512_mask_storeu_ps(p, mask(n), v);
    }
  }
  static void store_bf16(uint16_t* p, int64_t n, reg v) {
    const __m256i h = simd_avx512::f32_to_bf16x16(v);  // AVX-512F only: no AVX512_BF16 needed
    if (n >= 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
    } else {
      _mm256_mask_storeu_epi16(p, mask(n), h);
    }
  }
};

#include "kernels/winograd_body.inc"

}  // namespace impl_avx512

void wino_in_f32_avx512(const WinoIn& a) {
  using namespace impl_avx512;
  return a.alpha == 6 ? wino_in_body<V, 6, false>(a) : wino_in_body<V, 4, false>(a);
}
void wino_in_bf16_avx512(const WinoIn& a) {
  using namespace impl_avx512;
  return a.alpha == 6 ? wino_in_body<V, 6, true>(a) : wino_in_body<V, 4, true>(a);
}
void wino_out_avx512(const WinoOut& a) {
  using namespace impl_avx512;
  return a.alpha == 6 ? wino_out_body<V, 6>(a) : wino_out_body<V, 4>(a);
}

}  // namespace lg::conv
