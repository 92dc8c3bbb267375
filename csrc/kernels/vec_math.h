// Vector math on vec.h's `V`, one implementation for every kernel family and ISA: exp, log, tanh, erf, sigmoid,
// and the epilogue activations by their lg::gemm::Act code (vact), used by the elementwise programs
// (program_vec.h) and the GEMM epilogues (gemm_avx2.cpp, gemm_avx512.cpp), so a fused activation computes what the
// unfused one does. Same inclusion contract as vec.h (define LG_VEC_NS and LG_VEC_ISA first).
#pragma once
#include "kernels/activation.h"
#include "kernels/vec.h"

namespace lg::kernels::LG_VEC_NS {
namespace {

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

inline F vrelu(F x) { return V::select(V::lt(x, V::zero()), V::zero(), x); }  // NaN stays NaN, like torch.relu

// The GEMM/conv epilogues' GELUs (the semantics of lg::gemm::act_scalar). GELU (erf) as 0.5 x erfc(-x / sqrt(2)): erfc from its exp-based rational form (Numerical Recipes' erfcc,
// relative error < 1.2e-7), so gelu keeps its relative accuracy for negative x where 1 + erf(z) would cancel
// (torch's own float formula loses it there; the GEMM tests hold the epilogue to 2e-5 relative against fp64).
inline F vgelu_erf_erfc(F x) {
  const F z = V::mul(vabs(x), V::set1(0.70710678118654752f));
  const F t = V::div(V::set1(1.0f), V::fma(z, V::set1(0.5f), V::set1(1.0f)));
  F p = V::set1(0.17087277f);
  p = V::fma(p, t, V::set1(-0.82215223f));
  p = V::fma(p, t, V::set1(1.48851587f));
  p = V::fma(p, t, V::set1(-1.13520398f));
  p = V::fma(p, t, V::set1(0.27886807f));
  p = V::fma(p, t, V::set1(-0.18628806f));
  p = V::fma(p, t, V::set1(0.09678418f));
  p = V::fma(p, t, V::set1(0.37409196f));
  p = V::fma(p, t, V::set1(1.00002368f));
  p = V::fma(p, t, V::set1(-1.26551223f));
  const F e = V::mul(t, vexp(V::fnma(z, z, p)));  // erfc(|z|)
  const F f = V::select(V::ge(x, V::zero()), V::sub(V::set1(2.0f), e), e);  // erfc(-x / sqrt(2))
  const F y = V::mul(V::mul(x, V::set1(0.5f)), f);
  // torch's erf-GELU gives NaN for both infinities
  return V::select(V::eq(vabs(x), V::set1(__builtin_inff())), V::set1(__builtin_nanf("")), y);
}

// The same GELU, cheaper when no lane is below -2: there 1 + erf(x / sqrt(2)) >= 0.045, so verf's 5e-7 absolute
// error stays below 1.2e-5 relative and the exp-free rational erf serves (about half the work); a vector with a lane
// below -2 (about 1 in 6 for N(0, 1) pre-activations) takes the erfc form for all its lanes.
inline F vgelu_erf(F x) {
  if (V::any(V::lt(x, V::set1(-2.0f)))) return vgelu_erf_erfc(x);
  const F e = verf(V::mul(x, V::set1(0.70710678118654752440f)));
  const F y = V::mul(V::mul(x, V::set1(0.5f)), V::add(V::set1(1.0f), e));
  return V::select(V::eq(x, V::set1(__builtin_inff())), V::set1(__builtin_nanf("")), y);  // torch: gelu(inf) NaN
}

// GELU (tanh) as x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): 0.5 x (1 + tanh(u)) without the
// cancellation of 1 + tanh(u) for x < -3 (torch's float formula rounds it to 0 there; the difference is below
// 1e-7 absolute).
inline F vgelu_tanh(F x) {
  const F x3 = V::mul(V::mul(x, x), x);
  const F u2 = V::mul(V::set1(2.0f * 0.7978845608028654f), V::fma(V::set1(0.044715f), x3, x));
  return V::div(x, V::add(V::set1(1.0f), vexp(vneg(u2))));
}

// torch's float formulas, 0.5 x (1 + erf(x / sqrt(2))) and 0.5 x (1 + tanh(u)): what the elementwise programs
// compute, so small tensors match torch (the spec) where 1 + erf or 1 + tanh rounds to 0 (x below about -5.5 or
// -3); the epilogues above keep the relative accuracy there instead (differences below 1e-6 absolute).
inline F vgelu_erf_torch(F x) {
  const F e = verf(V::mul(x, V::set1(0.70710678118654752440f)));
  const F y = V::mul(V::mul(x, V::set1(0.5f)), V::add(V::set1(1.0f), e));
  return V::select(V::eq(vabs(x), V::set1(__builtin_inff())), V::set1(__builtin_nanf("")), y);
}
inline F vgelu_tanh_torch(F x) {
  const F x3 = V::mul(V::mul(x, x), x);
  const F inner = V::mul(V::set1(0.7978845608028654f), V::fma(V::set1(0.044715f), x3, x));
  return V::mul(V::mul(V::set1(0.5f), x), V::add(V::set1(1.0f), vtanh_abs_accurate(inner)));
}

inline F vsilu(F x) { return V::div(x, V::add(V::set1(1.0f), vexp(vneg(x)))); }

// The epilogue activation with code `act` (lg::gemm::Act).
inline F vact(F x, int act) {
  switch (static_cast<gemm::Act>(act)) {
    case gemm::Act::None: return x;
    case gemm::Act::Relu: return vrelu(x);
    case gemm::Act::GeluErf: return vgelu_erf(x);
    case gemm::Act::GeluTanh: return vgelu_tanh(x);
    case gemm::Act::Silu: return vsilu(x);
    case gemm::Act::Tanh: return vtanh(x);
    case gemm::Act::Sigmoid: return vsigmoid(x);
  }
  return x;
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
