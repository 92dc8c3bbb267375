// The program interpreter's vector code, written once over a small vector abstraction `V` and compiled three
// times: by fused_eltwise.cpp (portable, V = one float), fused_eltwise_avx2.cpp (V = __m256) and
// fused_eltwise_avx512.cpp (V = __m512). Each includes this file after defining LG_VEC_NS (vec_scalar / vec_avx2 /
// vec_avx512) and LG_VEC_ISA (0 / 1 / 2). Everything here has internal linkage inside lg::kernels::LG_VEC_NS, so no
// ISA-flagged function can be merged with another TU's copy, and every symbol names its ISA (tests/test_build.py).
// Only builtins and extern "C" libm functions are called: no std:: templates (their out-of-line copies would be
// shared COMDATs compiled with one TU's ISA flags).
#include <cstdint>
#include <cstring>

#include "kernels/program.h"

#if LG_VEC_ISA > 0
#include <immintrin.h>
#endif

#ifndef LG_VEC_NS
#error "define LG_VEC_NS before including program_vec.h"
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

// --------------------------------------------------------------------------------------------------- math
// exp: Cephes expf (range reduction by ln2 in two parts, degree-6 polynomial); ~1 ulp. AVX-512 applies 2^n with
// vscalefps, which rounds overflow to inf and underflow to the right denormal/0 by itself; the other variants apply
// 2^n in two halves (results down to the smallest denormal are right) and patch the out-of-range inputs.
inline F vexp_poly(F xc, F* n_out) {
  const F n = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
  F r = V::fnma(n, V::set1(0.693359375f), xc);
  r = V::fnma(n, V::set1(-2.12194440e-4f), r);
  F p = V::set1(1.9875691500e-4f);
  p = V::fma(p, r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  *n_out = n;
  return V::fma(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
}

inline F vexp(F x) {
#if LG_VEC_ISA == 2
  // exp(89) overflows and exp(-104) underflows to 0, so clamping there changes no result; NaN passes max/min
  // (they return their second operand when either is NaN).
  const F xc = V::min(V::set1(89.0f), V::max(V::set1(-104.0f), x));
  F n;
  const F y = vexp_poly(xc, &n);
  return _mm512_scalef_ps(y, n);
#else
  const F hi = V::set1(88.72283935546875f), lo = V::set1(-103.97208404541015625f);
  const F xc = V::min(hi, V::max(lo, x));  // NaN stays NaN (second operand)
  F n;
  F y = vexp_poly(xc, &n);
  const I ni = V::cvt_i(n);
  const I n1 = V::srai1(ni), n2 = V::isub(ni, n1);
  y = V::mul(y, V::asf(V::slli23(V::iadd(n1, V::iset1(127)))));
  y = V::mul(y, V::asf(V::slli23(V::iadd(n2, V::iset1(127)))));
  y = V::select(V::gt(x, hi), V::set1(__builtin_inff()), y);
  y = V::select(V::lt(x, lo), V::zero(), y);
  return V::select(V::isnan(x), x, y);
#endif
}

// exp for arguments known to lie in [-87, 80] (or NaN): one 2^n scaling, no range patches.
inline F vexp_mid(F x) {
  F n;
  const F y = vexp_poly(x, &n);
#if LG_VEC_ISA == 2
  return _mm512_scalef_ps(y, n);
#else
  return V::mul(y, V::asf(V::slli23(V::iadd(V::cvt_i(n), V::iset1(127)))));
#endif
}

// log: Cephes logf; denormals rescaled first; log(0) = -inf, log(<0) = NaN, log(inf) = inf.
inline F vlog(F x) {
  const M small = V::lt(x, V::set1(1.17549435e-38f));
  F xs = V::select(small, V::mul(x, V::set1(8388608.0f)), x);  // * 2^23
  const I bits = V::asi(xs);
  F e = V::cvt_f(V::isub(V::srli23(V::iand(bits, V::iset1(0x7f800000))), V::iset1(126)));
  e = V::select(small, V::sub(e, V::set1(23.0f)), e);
  F m = V::asf(V::ior(V::iand(bits, V::iset1(0x007fffff)), V::iset1(0x3f000000)));  // [0.5, 1)
  const M lo = V::lt(m, V::set1(0.707106781186547524f));
  e = V::select(lo, V::sub(e, V::set1(1.0f)), e);
  F t = V::sub(V::select(lo, V::add(m, m), m), V::set1(1.0f));
  const F z = V::mul(t, t);
  F y = V::set1(7.0376836292e-2f);
  y = V::fma(y, t, V::set1(-1.1514610310e-1f));
  y = V::fma(y, t, V::set1(1.1676998740e-1f));
  y = V::fma(y, t, V::set1(-1.2420140846e-1f));
  y = V::fma(y, t, V::set1(1.4249322787e-1f));
  y = V::fma(y, t, V::set1(-1.6668057665e-1f));
  y = V::fma(y, t, V::set1(2.0000714765e-1f));
  y = V::fma(y, t, V::set1(-2.4999993993e-1f));
  y = V::fma(y, t, V::set1(3.3333331174e-1f));
  y = V::mul(V::mul(y, t), z);
  y = V::fma(e, V::set1(-2.12194440e-4f), y);
  y = V::fnma(V::set1(0.5f), z, y);
  F r = V::add(t, y);
  r = V::fma(e, V::set1(0.693359375f), r);
  r = V::select(V::eq(x, V::set1(__builtin_inff())), x, r);
  r = V::select(V::eq(x, V::zero()), V::set1(-__builtin_inff()), r);
  r = V::select(V::lt(x, V::zero()), V::set1(__builtin_nanf("")), r);
  return V::select(V::isnan(x), x, r);
}

inline F vabs(F x) { return V::band(x, V::asf(V::iset1(0x7fffffff))); }
inline F vneg(F x) { return V::bxor(x, V::set1(-0.0f)); }

// tanh: Cephes tanhf (odd polynomial below 0.625, 1 - 2/(e^2|x| + 1) above).
inline F vtanh(F x) {
  const F ax = vabs(x);
  const F z = V::mul(x, x);
  F p = V::set1(-5.70498872745e-3f);
  p = V::fma(p, z, V::set1(2.06390887954e-2f));
  p = V::fma(p, z, V::set1(-5.37397155531e-2f));
  p = V::fma(p, z, V::set1(1.33314422036e-1f));
  p = V::fma(p, z, V::set1(-3.33332819422e-1f));
  const F ys = V::fma(V::mul(p, z), x, x);
  // |x| >= 9.1 gives tanh = +-1 in f32: clamping 2|x| at 20 keeps exp and rcp in range (NaN passes min)
  const F e = vexp_mid(V::min(V::set1(20.0f), V::add(ax, ax)));
  F yl = V::fnma(V::set1(2.0f), V::rcp(V::add(e, V::set1(1.0f))), V::set1(1.0f));
  yl = V::bor(yl, V::band(x, V::set1(-0.0f)));
  return V::select(V::lt(ax, V::set1(0.625f)), ys, yl);
}

// tanh as sign(x) (1 - 2 / (e^2|x| + 1)) alone: absolute error ~1e-7 near 0 (no relative accuracy there), which is
// all 1 + tanh(u) in GELU needs.
inline F vtanh_abs_accurate(F x) {
  const F e = vexp_mid(V::min(V::set1(20.0f), V::add(vabs(x), vabs(x))));
  const F y = V::fnma(V::set1(2.0f), V::rcp(V::add(e, V::set1(1.0f))), V::set1(1.0f));
  return V::bor(y, V::band(x, V::set1(-0.0f)));
}

// erf: the rational approximation x P(x^2) / Q(x^2) on [-4, 4] (Eigen's / XLA's float erf; |error| < 5e-7), +-1
// exactly beyond; no exp and one reciprocal, about half the work of the exp-based forms.
inline F verf(F x) {
  const F xc = V::min(V::set1(4.0f), V::max(V::set1(-4.0f), x));  // NaN stays NaN
  const F x2 = V::mul(xc, xc);
  F p = V::fma(x2, V::set1(-2.72614225801306e-10f), V::set1(2.77068142495902e-08f));
  p = V::fma(x2, p, V::set1(-2.10102402082508e-06f));
  p = V::fma(x2, p, V::set1(-5.69250639462346e-05f));
  p = V::fma(x2, p, V::set1(-7.34990630326855e-04f));
  p = V::fma(x2, p, V::set1(-2.95459980854025e-03f));
  p = V::fma(x2, p, V::set1(-1.60960333262415e-02f));
  F q = V::fma(x2, V::set1(-1.45660718464996e-05f), V::set1(-2.13374055278905e-04f));
  q = V::fma(x2, q, V::set1(-1.68282697438203e-03f));
  q = V::fma(x2, q, V::set1(-7.37332916720468e-03f));
  q = V::fma(x2, q, V::set1(-1.42647390514189e-02f));
  const F y = V::mul(p, V::mul(xc, V::rcp(q)));  // q in [-0.27, -0.014]
  // beyond 3.92 erf rounds to +-1 exactly (the approximation is only within 5e-7 of it): gelu(-100) must be 0
  return V::select(V::gt(vabs(x), V::set1(3.92f)), V::bor(V::set1(1.0f), V::band(x, V::set1(-0.0f))), y);
}

inline F vsigmoid(F x) { return V::div(V::set1(1.0f), V::add(V::set1(1.0f), vexp(vneg(x)))); }

// ------------------------------------------------------------------------------------------------- loops
template <class Fn>
inline void map1(const float* a, float* d, int64_t n, Fn f) {
  int64_t i = 0;
  for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i)));
  if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i)), n - i);
}

template <class Fn>
inline void map2(const float* a, const float* b, float* d, int64_t n, int mode, float k, Fn f) {
  int64_t i = 0;
  const F kv = V::set1(k);
  if (mode == 0) {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i), V::load(b + i)));
    if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i), V::load_n(b + i, n - i)), n - i);
  } else if (mode == 1) {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i), kv));
    if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i), kv), n - i);
  } else {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(kv, V::load(a + i)));
    if (i < n) V::store_n(d + i, f(kv, V::load_n(a + i, n - i)), n - i);
  }
}

inline F bool_f(M m) { return V::select(m, V::set1(1.0f), V::zero()); }

inline float round_bf16(float x) {
  const uint32_t u = fbits(x);
  if (x != x) return bitsf(0x7fc00000u);
  return bitsf(((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = fbits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (a < 0x38800000u) {  // f16 subnormal (or zero): RNE of |f| * 2^24
    const float s = __builtin_rintf(bitsf(a) * 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(s));
  }
  return static_cast<uint16_t>(sign | ((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13));
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return bitsf(fbits(v) | sign);
  }
  if (e == 31) return bitsf(sign | 0x7f800000u | (m << 13));
  return bitsf(sign | ((e + 112u) << 23) | (m << 13));
}

void unary(int32_t fn, const float* a, float* d, int64_t n, const float* k) {
  switch (fn) {
    case U_NEG: map1(a, d, n, [](F x) { return vneg(x); }); break;
    case U_ABS: map1(a, d, n, [](F x) { return vabs(x); }); break;
    case U_EXP: map1(a, d, n, [](F x) { return vexp(x); }); break;
    case U_LOG: map1(a, d, n, [](F x) { return vlog(x); }); break;
    case U_SQRT: map1(a, d, n, [](F x) { return V::sqrt(x); }); break;
    case U_RSQRT: map1(a, d, n, [](F x) { return V::div(V::set1(1.0f), V::sqrt(x)); }); break;
    case U_ERF: map1(a, d, n, [](F x) { return verf(x); }); break;
    case U_TANH: map1(a, d, n, [](F x) { return vtanh(x); }); break;
    case U_SIGMOID: map1(a, d, n, [](F x) { return vsigmoid(x); }); break;
    case U_RELU: map1(a, d, n, [](F x) { return V::select(V::lt(x, V::zero()), V::zero(), x); }); break;
    case U_GELU:
      map1(a, d, n, [](F x) {
        const F e = verf(V::mul(x, V::set1(0.70710678118654752440f)));
        const F y = V::mul(V::mul(x, V::set1(0.5f)), V::add(V::set1(1.0f), e));
        // torch's erf-GELU gives NaN for both infinities
        return V::select(V::eq(vabs(x), V::set1(__builtin_inff())), V::set1(__builtin_nanf("")), y);
      });
      break;
    case U_GELU_TANH:
      // torch's formula, 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): x * sigmoid(2u) would be more
      // accurate for x < -3, but torch (the spec) rounds 1 + tanh(u) to 0 there, and small tensors must match it
      map1(a, d, n, [](F x) {
        const F x3 = V::mul(V::mul(x, x), x);
        const F inner = V::mul(V::set1(0.7978845608028654f), V::fma(V::set1(0.044715f), x3, x));
        return V::mul(V::mul(V::set1(0.5f), x), V::add(V::set1(1.0f), vtanh_abs_accurate(inner)));
      });
      break;
    case U_SILU: map1(a, d, n, [](F x) { return V::div(x, V::add(V::set1(1.0f), vexp(vneg(x)))); }); break;
    case U_SIN: for (int64_t i = 0; i < n; ++i) d[i] = __builtin_sinf(a[i]); break;
    case U_COS: for (int64_t i = 0; i < n; ++i) d[i] = __builtin_cosf(a[i]); break;
    case U_RECIP: map1(a, d, n, [](F x) { return V::div(V::set1(1.0f), x); }); break;
    case U_LNOT: map1(a, d, n, [](F x) { return bool_f(V::eq(x, V::zero())); }); break;
    case U_CLAMP: {
      const F lo = V::set1(k[0]), hi = V::set1(k[1]);
      // torch.clamp: NaN stays NaN; min > max gives max.
      map1(a, d, n, [lo, hi](F x) {
        const F y = V::select(V::lt(x, lo), lo, x);
        return V::select(V::gt(y, hi), hi, y);
      });
      break;
    }
    case U_TO_BF16: for (int64_t i = 0; i < n; ++i) d[i] = round_bf16(a[i]); break;
    case U_TO_F16: for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(f32_to_f16(a[i])); break;
    case U_TO_BOOL: map1(a, d, n, [](F x) { return bool_f(V::ne(x, V::zero())); }); break;
    case U_TRUNC: map1(a, d, n, [](F x) { return V::trunc(x); }); break;
    default: map1(a, d, n, [](F x) { return x; }); break;  // U_COPY
  }
}

void binary(int32_t fn, const float* a, const float* b, float* d, int64_t n, int mode, float k) {
  switch (fn) {
    case B_ADD: map2(a, b, d, n, mode, k, [](F x, F y) { return V::add(x, y); }); break;
    case B_SUB: map2(a, b, d, n, mode, k, [](F x, F y) { return V::sub(x, y); }); break;
    case B_MUL: map2(a, b, d, n, mode, k, [](F x, F y) { return V::mul(x, y); }); break;
    case B_DIV: map2(a, b, d, n, mode, k, [](F x, F y) { return V::div(x, y); }); break;
    case B_MAX:
      map2(a, b, d, n, mode, k, [](F x, F y) {
        return V::select(V::mor(V::isnan(x), V::isnan(y)), V::add(x, y), V::max(x, y));
      });
      break;
    case B_MIN:
      map2(a, b, d, n, mode, k, [](F x, F y) {
        return V::select(V::mor(V::isnan(x), V::isnan(y)), V::add(x, y), V::min(x, y));
      });
      break;
    case B_EQ: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::eq(x, y)); }); break;
    case B_NE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::ne(x, y)); }); break;
    case B_LT: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::lt(x, y)); }); break;
    case B_LE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::le(x, y)); }); break;
    case B_GT: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::gt(x, y)); }); break;
    case B_GE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::ge(x, y)); }); break;
    case B_AND:
      map2(a, b, d, n, mode, k,
           [](F x, F y) { return bool_f(V::mand(V::ne(x, V::zero()), V::ne(y, V::zero()))); });
      break;
    case B_OR:
      map2(a, b, d, n, mode, k,
           [](F x, F y) { return bool_f(V::mor(V::ne(x, V::zero()), V::ne(y, V::zero()))); });
      break;
    default:  // B_POW (general exponents; the lowering turns 2, 3, 0.5, -1, ... into multiplies and roots)
      for (int64_t i = 0; i < n; ++i) {
        const float x = mode == 2 ? k : a[i], y = mode == 0 ? b[i] : mode == 1 ? k : a[i];
        d[i] = __builtin_powf(x, y);
      }
      break;
  }
}

void where(const float* c, const float* a, const float* b, float* d, int64_t n, int32_t fn, float ka, float kb) {
  const F kav = V::set1(ka), kbv = V::set1(kb);
  const bool sa = fn & 1, sb = fn & 2;
  int64_t i = 0;
  for (; i < n; i += V::N) {
    const int64_t m = imin(V::N, n - i);
    const bool full = m == V::N;
    const F cv = full ? V::load(c + i) : V::load_n(c + i, m);
    const F av = sa ? kav : full ? V::load(a + i) : V::load_n(a + i, m);
    const F bv = sb ? kbv : full ? V::load(b + i) : V::load_n(b + i, m);
    const F r = V::select(V::ne(cv, V::zero()), av, bv);
    if (full) V::store(d + i, r);
    else V::store_n(d + i, r, m);
  }
}

// Horizontal sum / max of a vector through memory (portable, and NaN-propagating for max).
inline float hsum(F v) { return V::reduce_add(v); }
inline float hmax(F v) {
  float t[V::N];
  V::store(t, v);
  float m = t[0];
  for (int i = 1; i < V::N; ++i) m = (t[i] > m || t[i] != t[i]) ? t[i] : m;
  return m;
}

inline float row_sum(const float* x, int64_t n) {
  F s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    s0 = V::add(s0, V::load(x + i));
    s1 = V::add(s1, V::load(x + i + V::N));
    s2 = V::add(s2, V::load(x + i + 2 * V::N));
    s3 = V::add(s3, V::load(x + i + 3 * V::N));
  }
  for (; i + V::N <= n; i += V::N) s0 = V::add(s0, V::load(x + i));
  if (i < n) s1 = V::add(s1, V::load_n(x + i, n - i));
  return hsum(V::add(V::add(s0, s1), V::add(s2, s3)));
}

// sum((x - c)^2)
inline float row_sqdev(const float* x, int64_t n, float c) {
  const F cv = V::set1(c);
  F s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    const F d0 = V::sub(V::load(x + i), cv), d1 = V::sub(V::load(x + i + V::N), cv);
    s0 = V::fma(d0, d0, s0);
    s1 = V::fma(d1, d1, s1);
  }
  for (; i + V::N <= n; i += V::N) {
    const F d0 = V::sub(V::load(x + i), cv);
    s0 = V::fma(d0, d0, s0);
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += (x[i] - c) * (x[i] - c);
  return hsum(V::add(s0, s1)) + tail;
}

inline float row_sumsq(const float* x, int64_t n) {
  F s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    const F a = V::load(x + i), b = V::load(x + i + V::N);
    s0 = V::fma(a, a, s0);
    s1 = V::fma(b, b, s1);
  }
  for (; i + V::N <= n; i += V::N) {
    const F a = V::load(x + i);
    s0 = V::fma(a, a, s0);
  }
  if (i < n) {
    const F a = V::load_n(x + i, n - i);  // masked lanes load 0
    s1 = V::fma(a, a, s1);
  }
  return hsum(V::add(s0, s1));
}

// The row's maximum, NaNs skipped: softmax needs no NaN here (a NaN element makes exp(x - max), the sum and so
// every output of its row NaN, as in torch).
inline float row_max(const float* x, int64_t n) {
  F m0 = V::set1(-__builtin_inff()), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    m0 = V::max(V::load(x + i), m0);  // the second operand when the first is NaN
    m1 = V::max(V::load(x + i + V::N), m1);
  }
  for (; i + V::N <= n; i += V::N) m0 = V::max(V::load(x + i), m0);
  float m = hmax(V::max(m0, m1));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// One row op over `rows` rows of length `len` (src and dst may be the same buffer; weight/bias tiles hold the
// broadcast parameters row by row).
void row_op(int32_t fn, const float* src, const float* w, const float* b, float* dst, int64_t rows, int64_t len,
            float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * len;
    float* y = dst + r * len;
    const float* wr = w ? w + r * len : nullptr;
    const float* br = b ? b + r * len : nullptr;
    if (fn == R_LAYER_NORM || fn == R_RMS_NORM) {
      float mean = 0.0f, rstd;
      if (fn == R_LAYER_NORM) {
        mean = len ? row_sum(x, len) / static_cast<float>(len) : 0.0f;
        const float var = len ? row_sqdev(x, len, mean) / static_cast<float>(len) : 0.0f;
        rstd = 1.0f / __builtin_sqrtf(var + eps);
      } else {
        const float ms = len ? row_sumsq(x, len) / static_cast<float>(len) : 0.0f;
        rstd = 1.0f / __builtin_sqrtf(ms + eps);
      }
      const F mv = V::set1(mean), rv = V::set1(rstd);
      int64_t i = 0;
      auto one = [&](F xv, F wv, F bv) {
        F t = V::mul(V::sub(xv, mv), rv);
        if (wr) t = V::mul(t, wv);
        if (br) t = V::add(t, bv);
        return t;
      };
      for (; i + V::N <= len; i += V::N)
        V::store(y + i, one(V::load(x + i), wr ? V::load(wr + i) : mv, br ? V::load(br + i) : mv));
      if (i < len) {
        const int64_t m = len - i;
        V::store_n(y + i, one(V::load_n(x + i, m), wr ? V::load_n(wr + i, m) : mv, br ? V::load_n(br + i, m) : mv),
                   m);
      }
    } else {  // softmax / log-softmax
      const float mx = row_max(x, len);
      const F mv = V::set1(mx);
      F s0 = V::zero();
      int64_t i = 0;
      for (; i + V::N <= len; i += V::N) {
        const F e = vexp(V::sub(V::load(x + i), mv));
        if (fn == R_SOFTMAX) V::store(y + i, e);
        s0 = V::add(s0, e);
      }
      float sum = hsum(s0);
      if (i < len) {
        const int64_t m = len - i;
        const F e = vexp(V::sub(V::load_n(x + i, m), mv));
        float t[V::N];
        V::store(t, e);
        for (int64_t j = 0; j < m; ++j) sum += t[j];
        if (fn == R_SOFTMAX) V::store_n(y + i, e, m);
      }
      if (fn == R_SOFTMAX) {
        const F inv = V::set1(1.0f / sum);
        map1(y, y, len, [inv](F v) { return V::mul(v, inv); });
      } else {
        const F sh = V::set1(mx + __builtin_logf(sum));
        map1(x, y, len, [sh](F v) { return V::sub(v, sh); });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------- loads and stores
inline int64_t itemsize(int32_t dt) {
  switch (dt) {
    case PD_F32: case PD_I32: return 4;
    case PD_F16: case PD_BF16: return 2;
    case PD_F64: case PD_I64: return 8;
    default: return 1;
  }
}

// out[i] = (float) src[(off + i * stride)] for i < n, src of dtype dt.
void convert_in(const char* base, int32_t dt, int64_t off, int64_t stride, int64_t n, float* out) {
  switch (dt) {
    case PD_F32: {
      const float* s = reinterpret_cast<const float*>(base) + off;
      if (stride == 1) {
        std::memcpy(out, s, static_cast<size_t>(n) * 4);
      } else if (stride == 0) {
        const F v = V::set1(*s);
        int64_t i = 0;
        for (; i + V::N <= n; i += V::N) V::store(out + i, v);
        for (; i < n; ++i) out[i] = *s;
      } else {
        for (int64_t i = 0; i < n; ++i) out[i] = s[i * stride];
      }
      break;
    }
    case PD_BF16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = bitsf(static_cast<uint32_t>(s[i * stride]) << 16);
      break;
    }
    case PD_F16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i * stride]);
      break;
    }
    case PD_F64: {
      const double* s = reinterpret_cast<const double*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I64: {
      const int64_t* s = reinterpret_cast<const int64_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I32: {
      const int32_t* s = reinterpret_cast<const int32_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I8: {
      const int8_t* s = reinterpret_cast<const int8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_BOOL: {
      const uint8_t* s = reinterpret_cast<const uint8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = s[i * stride] ? 1.0f : 0.0f;
      break;
    }
    default: {  // PD_U8
      const uint8_t* s = reinterpret_cast<const uint8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
  }
}

// dst (contiguous, dtype dt) <- src converted. Float-to-int stores truncate toward zero as torch's casts do.
void convert_out(const float* src, char* dst, int32_t dt, int64_t n) {
  switch (dt) {
    case PD_F32:
      if (reinterpret_cast<const void*>(src) != reinterpret_cast<void*>(dst))
        std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case PD_BF16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint16_t>(fbits(round_bf16(src[i])) >> 16);
      break;
    }
    case PD_F16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      break;
    }
    case PD_F64: {
      double* d = reinterpret_cast<double*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<double>(src[i]);
      break;
    }
    case PD_I64: {
      int64_t* d = reinterpret_cast<int64_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int64_t>(src[i]);
      break;
    }
    case PD_I32: {
      int32_t* d = reinterpret_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int32_t>(src[i]);
      break;
    }
    case PD_I8: {
      int8_t* d = reinterpret_cast<int8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int8_t>(static_cast<int32_t>(src[i]));
      break;
    }
    case PD_BOOL: {
      uint8_t* d = reinterpret_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = src[i] != 0.0f;
      break;
    }
    default: {
      uint8_t* d = reinterpret_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(static_cast<int32_t>(src[i]));
      break;
    }
  }
}

inline int64_t outer_offset(const ProgPlan& p, const ProgInput& in, int64_t row) {
  int64_t off = 0;
  for (int d = p.ndim - 2; d >= 0 && row > 0; --d) {
    const int64_t s = p.sizes[d];
    const int64_t q = row / s;
    off += (row - q * s) * in.strides[d];
    row = q;
  }
  return off;
}

// The tile [e0, e0 + n) of input `in` as f32: a pointer into the input itself when it is f32 and laid out like
// the tile, else converted/broadcast/gathered into buf.
const float* load_input(const ProgPlan& p, const ProgInput& in, int64_t e0, int64_t n, float* buf) {
  if (in.flat) {
    if (in.dtype == PD_F32) return reinterpret_cast<const float*>(in.ptr) + e0;
    convert_in(in.ptr, in.dtype, e0, 1, n, buf);
    return buf;
  }
  const int64_t inner = p.inner, s = in.strides[p.ndim - 1];
  int64_t e = e0, done = 0;
  while (done < n) {
    const int64_t row = e / inner, j = e - row * inner;
    const int64_t seg = imin(inner - j, n - done);
    const int64_t off = outer_offset(p, in, row) + j * s;
    if (seg == n && s == 1 && in.dtype == PD_F32) return reinterpret_cast<const float*>(in.ptr) + off;
    convert_in(in.ptr, in.dtype, off, s, seg, buf + done);
    done += seg;
    e += seg;
  }
  return buf;
}

// dst[0, n) = src[0, n) with non-temporal stores (no read-for-ownership of output lines that will not be
// re-read soon); used only for outputs much larger than the caches.
inline void stream_store(float* dst, const float* src, int64_t n) {
#if LG_VEC_ISA == 2
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 63u); ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#elif LG_VEC_ISA == 1
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 31u); ++i) dst[i] = src[i];
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
#endif
}

inline void stream_fence() {
#if LG_VEC_ISA > 0
  _mm_sfence();
#endif
}

void run_tiles(const ProgPlan& p, int64_t t0, int64_t t1, float* scratch) {
  const float* regs[kProgMaxRegs] = {};
  for (int64_t t = t0; t < t1; ++t) {
    int64_t e0, n;
    if (p.tiles_per_row > 0) {
      const int64_t row = t / p.tiles_per_row, k = t - row * p.tiles_per_row;
      e0 = row * p.inner + k * p.tile;
      n = imin(p.tile, p.inner - k * p.tile);
    } else {
      e0 = t * p.rows_per_tile * p.inner;
      n = imin(p.rows_per_tile * p.inner, p.numel - e0);
    }
    for (int32_t pc = 0; pc < p.ncode; ++pc) {
      const Instr& ins = p.code[pc];
      float* own = scratch + static_cast<int64_t>(ins.dst) * p.tile;
      float* const bound = ins.bind >= 0 ? reinterpret_cast<float*>(p.out[ins.bind]) + e0 : nullptr;
      float* d = bound && !p.stream ? bound : own;
      switch (ins.op) {
        case OP_LOAD: regs[ins.dst] = load_input(p, p.in[ins.a], e0, n, own); break;
        case OP_STORE: {
          const int64_t isz = itemsize(p.out_dtype[ins.b]);
          if (p.stream && p.out_dtype[ins.b] == PD_F32)
            stream_store(reinterpret_cast<float*>(p.out[ins.b]) + e0, regs[ins.a], n);
          else
            convert_out(regs[ins.a], p.out[ins.b] + e0 * isz, p.out_dtype[ins.b], n);
          break;
        }
        case OP_UNARY: unary(ins.fn, regs[ins.a], d, n, p.consts + ins.k); regs[ins.dst] = d; break;
        case OP_BINARY: {
          const float k = ins.c == 0 ? 0.0f : p.consts[ins.k];
          binary(ins.fn, regs[ins.a], ins.c == 0 ? regs[ins.b] : nullptr, d, n, ins.c, k);
          regs[ins.dst] = d;
          break;
        }
        case OP_WHERE: {
          const float ka = (ins.fn & 1) ? p.consts[ins.k] : 0.0f, kb = (ins.fn & 2) ? p.consts[ins.k + 1] : 0.0f;
          where(regs[ins.a], (ins.fn & 1) ? nullptr : regs[ins.b], (ins.fn & 2) ? nullptr : regs[ins.c], d, n,
                ins.fn, ka, kb);
          regs[ins.dst] = d;
          break;
        }
        default:  // OP_ROW
          row_op(ins.fn, regs[ins.a], ins.b >= 0 ? regs[ins.b] : nullptr, ins.c >= 0 ? regs[ins.c] : nullptr, d,
                 n / p.inner, p.inner, p.consts[ins.k]);
          regs[ins.dst] = d;
          break;
      }
      if (bound && p.stream) stream_store(bound, d, n);
    }
  }
  if (p.stream) stream_fence();
}

// ---------------------------------------------------------------------------------------------- reductions
inline F red_step(int32_t fn, F acc, F v) {
  if (fn == RD_MAX) return V::select(V::isnan(v), v, V::max(v, acc));
  if (fn == RD_MIN) return V::select(V::isnan(v), v, V::min(v, acc));
  return V::add(acc, v);
}

void reduce_rows(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red, int64_t inner) {
  const bool is_max = fn == RD_MAX, is_min = fn == RD_MIN;
  if (inner == 1) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* r = x + o * red;
      float v;
      if (is_max || is_min) {
        F acc = V::set1(r[0]);
        int64_t i = 0;
        for (; i + V::N <= red; i += V::N) acc = red_step(fn, acc, V::load(r + i));
        float t[V::N];
        V::store(t, acc);
        v = t[0];
        for (int j = 1; j < V::N; ++j) v = (t[j] != t[j] || (is_max ? t[j] > v : t[j] < v)) && v == v ? t[j] : v;
        for (; i < red; ++i) v = (r[i] != r[i] || (is_max ? r[i] > v : r[i] < v)) && v == v ? r[i] : v;
      } else {
        v = row_sum(r, red);
        if (fn == RD_MEAN) v /= static_cast<float>(red);
      }
      out[o] = v;
    }
    return;
  }
  for (int64_t o = o0; o < o1; ++o) {
    const float* base = x + o * red * inner;
    float* dst = out + o * inner;
    if (red == 0) {
      for (int64_t i = 0; i < inner; ++i) dst[i] = fn == RD_MEAN ? __builtin_nanf("") : 0.0f;
      continue;
    }
    std::memcpy(dst, base, static_cast<size_t>(inner) * 4);
    for (int64_t r = 1; r < red; ++r) {
      const float* src = base + r * inner;
      int64_t i = 0;
      for (; i + V::N <= inner; i += V::N) V::store(dst + i, red_step(fn, V::load(dst + i), V::load(src + i)));
      for (; i < inner; ++i) {
        const float a = dst[i], b = src[i];
        if (is_max) dst[i] = (b != b || b > a) && a == a ? b : a;
        else if (is_min) dst[i] = (b != b || b < a) && a == a ? b : a;
        else dst[i] = a + b;
      }
    }
    if (fn == RD_MEAN) {
      const float c = static_cast<float>(red);
      for (int64_t i = 0; i < inner; ++i) dst[i] /= c;
    }
  }
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
