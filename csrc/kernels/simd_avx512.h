// AVX-512 helpers shared by several AVX-512 translation units. Include only from *_avx512.cpp files: every
// function here lives in a namespace named *_avx512, so tests/test_build.py can tell ISA code from portable code.
#pragma once

#include <immintrin.h>

#include <cstdint>

// Functions that use an AVX-512 extension beyond the F+BW+VL+FMA set every *_avx512.cpp unit is compiled with
// (only BF16 here: vdpbf16ps) carry this attribute and have "bf16" in their name; they are entered only after
// cpu_features().avx512_bf16 (tests/test_build.py checks that BF16 instructions appear nowhere else). Whole units
// for one extension use a suffix instead (*_avx512vnni.cpp, see CMakeLists.txt).
#define LG_TARGET_AVX512BF16 __attribute__((target("avx512bf16")))

namespace lg::simd_avx512 {

// fp32 -> bf16 bits (in the low half of each 32-bit lane) with AVX-512F only: round to nearest even, NaN kept quiet,
// the rule of the portable f32_to_bf16 (and of vcvtneps2bf16 for all but denormal inputs, which it flushes), so
// bf16 operands need no AVX512_BF16.
inline __m512i bf16_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

// 16 floats as 16 bf16 (what _mm512_cvtneps_pbh returns).
inline __m256i f32_to_bf16x16(__m512 v) { return _mm512_cvtepi32_epi16(bf16_bits(v)); }

// 32 floats as 32 bf16: `lo` in words 0-15, `hi` in words 16-31 (what _mm512_cvtne2ps_pbh(hi, lo) returns).
inline __m512i f32_to_bf16x32(__m512 hi, __m512 lo) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(f32_to_bf16x16(lo)), f32_to_bf16x16(hi), 1);
}

// The first n of 16 lanes (n clamped to [0, 16]): masked loads/stores for a row's tail.
inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}

// 16 x 16 in-register transpose of 32-bit words: r[j] becomes column j (lane i = row i).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
  }
}

}  // namespace lg::simd_avx512
