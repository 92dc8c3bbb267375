// A small vector abstraction `V` over fp32 lanes, for kernels written once and compiled per ISA: V = one float
// (portable), __m256 (LG_VEC_ISA 1, AVX2 + FMA) or __m512 (LG_VEC_ISA 2, AVX-512). A unit defines LG_VEC_NS
// (vec_scalar / vec_avx2 / vec_avx512) and LG_VEC_ISA (0 / 1 / 2), then includes this file (or vec_math.h).
// Everything has internal linkage inside lg::kernels::LG_VEC_NS, so no ISA-flagged function can be merged with
// another TU's copy, and every symbol names its ISA (tests/test_build.py). Only builtins and extern "C" libm
// functions are called: no std:: templates (their out-of-line copies would be shared COMDATs compiled with one
// TU's ISA flags).
#pragma once
#include <cstdint>
#include <cstring>

#if LG_VEC_ISA > 0
#include <immintrin.h>
#endif

#ifndef LG_VEC_NS
#error "define LG_VEC_NS before including vec.h"
#endif

namespace lg::kernels::LG_VEC_NS {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

inline uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------------- vectors
#if LG_VEC_ISA == 2
struct V {
  static constexpr int N = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static __mmask16 tail(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F zero() { return _mm512_setzero_ps(); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }  // b when either is NaN
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F sqrt(F a) { return _mm512_sqrt_ps(a); }
  static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F trunc(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  static I asi(F a) { return _mm512_castps_si512(a); }
  static F asf(I a) { return _mm512_castsi512_ps(a); }
  static F band(F a, F b) { return asf(_mm512_and_si512(asi(a), asi(b))); }
  static F bor(F a, F b) { return asf(_mm512_or_si512(asi(a), asi(b))); }
  static F bxor(F a, F b) { return asf(_mm512_xor_si512(asi(a), asi(b))); }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M eq(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static M ne(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
  static M isnan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static M mor(M a, M b) { return static_cast<M>(a | b); }
  static bool any(M m) { return m != 0; }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  static I iset1(int32_t x) { return _mm512_set1_epi32(x); }
  static I cvt_i(F a) { return _mm512_cvtps_epi32(a); }
  static F cvt_f(I a) { return _mm512_cvtepi32_ps(a); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm512_and_si512(a, b); }
  static I ior(I a, I b) { return _mm512_or_si512(a, b); }
  static I slli23(I a) { return _mm512_slli_epi32(a, 23); }
  static I srli23(I a) { return _mm512_srli_epi32(a, 23); }
  static I srai1(I a) { return _mm512_srai_epi32(a, 1); }
  static float reduce_add(F a) { return _mm512_reduce_add_ps(a); }
  // 1/a to ~1 ulp for finite nonzero a below 2^126 (rcp14 + one Newton step; callers keep a in that range)
  static F rcp(F a) {
    const F r = _mm512_rcp14_ps(a);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(1.0f)), r);
  }
};
#elif LG_VEC_ISA == 1
struct V {
  static constexpr int N = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256;
  static __m256i tail(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail(n)); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void store_n(float* p, F v, int64_t n) { _mm256_maskstore_ps(p, tail(n), v); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F zero() { return _mm256_setzero_ps(); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F trunc(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  static I asi(F a) { return _mm256_castps_si256(a); }
  static F asf(I a) { return _mm256_castsi256_ps(a); }
  static F band(F a, F b) { return _mm256_and_ps(a, b); }
  static F bor(F a, F b) { return _mm256_or_ps(a, b); }
  static F bxor(F a, F b) { return _mm256_xor_ps(a, b); }
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M eq(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static M ne(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
  static M isnan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static M mor(M a, M b) { return _mm256_or_ps(a, b); }
  static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  static I iset1(int32_t x) { return _mm256_set1_epi32(x); }
  static I cvt_i(F a) { return _mm256_cvtps_epi32(a); }
  static F cvt_f(I a) { return _mm256_cvtepi32_ps(a); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  static I slli23(I a) { return _mm256_slli_epi32(a, 23); }
  static I srli23(I a) { return _mm256_srli_epi32(a, 23); }
  static I srai1(I a) { return _mm256_srai_epi32(a, 1); }
  static float reduce_add(F a) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
  }
  static F rcp(F a) {  // rcp (12 bits) + one Newton step: ~2 ulp
    const F r = _mm256_rcp_ps(a);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(1.0f)), r);
  }
};
#else
struct V {
  static constexpr int N = 1;
  using F = float;
  using I = int32_t;
  using M = bool;
  static F load(const float* p) { return *p; }
  static F load_n(const float* p, int64_t) { return *p; }
  static void store(float* p, F v) { *p = v; }
  static void store_n(float* p, F v, int64_t) { *p = v; }
  static F set1(float x) { return x; }
  static F zero() { return 0.0f; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F fma(F a, F b, F c) { return __builtin_fmaf(a, b, c); }
  static F fnma(F a, F b, F c) { return __builtin_fmaf(-a, b, c); }
  static F max(F a, F b) { return a > b ? a : b; }  // like maxps: b when either is NaN
  static F min(F a, F b) { return a < b ? a : b; }
  static F sqrt(F a) { return __builtin_sqrtf(a); }
  static F round(F a) { return __builtin_rintf(a); }
  static F trunc(F a) { return __builtin_truncf(a); }
  static I asi(F a) { return static_cast<I>(fbits(a)); }
  static F asf(I a) { return bitsf(static_cast<uint32_t>(a)); }
  static F band(F a, F b) { return bitsf(fbits(a) & fbits(b)); }
  static F bor(F a, F b) { return bitsf(fbits(a) | fbits(b)); }
  static F bxor(F a, F b) { return bitsf(fbits(a) ^ fbits(b)); }
  static M lt(F a, F b) { return a < b; }
  static M le(F a, F b) { return a <= b; }
  static M gt(F a, F b) { return a > b; }
  static M ge(F a, F b) { return a >= b; }
  static M eq(F a, F b) { return a == b; }
  static M ne(F a, F b) { return !(a == b); }
  static M isnan(F a) { return a != a; }
  static M mand(M a, M b) { return a && b; }
  static M mor(M a, M b) { return a || b; }
  static bool any(M m) { return m; }
  static F select(M m, F a, F b) { return m ? a : b; }
  static I iset1(int32_t x) { return x; }
  static I cvt_i(F a) { return a != a ? INT32_MIN : static_cast<I>(a); }  // a is already rounded
  static F cvt_f(I a) { return static_cast<F>(a); }
  static I iadd(I a, I b) { return static_cast<I>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }
  static I isub(I a, I b) { return static_cast<I>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)); }
  static I iand(I a, I b) { return a & b; }
  static I ior(I a, I b) { return a | b; }
  static I slli23(I a) { return static_cast<I>(static_cast<uint32_t>(a) << 23); }
  static I srli23(I a) { return static_cast<I>(static_cast<uint32_t>(a) >> 23); }
  static I srai1(I a) { return a >> 1; }
  static float reduce_add(F a) { return a; }
  static F rcp(F a) { return 1.0f / a; }
};
#endif

using F = V::F;
using I = V::I;
using M = V::M;


}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
