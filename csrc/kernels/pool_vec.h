// Channels-last pooling over one output pixel, written once over vec.h's `V`: pool_avx2.cpp and pool_avx512.cpp
// include it after defining LG_VEC_NS / LG_VEC_ISA and export the two entry points pool.cpp dispatches to.
// in[i] points at the window's i-th input pixel (C contiguous channels); out at the output pixel.
#pragma once
#include "kernels/vec.h"

namespace lg::kernels::LG_VEC_NS {
namespace {

// max over the window, NaN-propagating like torch (a NaN anywhere in the window gives NaN): maxps drops NaN, so
// NaN lanes are tracked on the side. Four vectors of channels per pass over the window's pointers.
inline void pool_max_pixel(const float* const* in, int64_t n_in, int64_t C, float* out) {
  const F lowest = V::set1(-__builtin_inff()), qnan = V::set1(__builtin_nanf(""));
  int64_t c = 0;
  for (; c + 4 * V::N <= C; c += 4 * V::N) {
    F a0 = lowest, a1 = lowest, a2 = lowest, a3 = lowest;
    M n0 = V::lt(lowest, lowest), n1 = n0, n2 = n0, n3 = n0;  // all lanes false
    for (int64_t i = 0; i < n_in; ++i) {
      const float* p = in[i] + c;
      const F v0 = V::load(p), v1 = V::load(p + V::N), v2 = V::load(p + 2 * V::N), v3 = V::load(p + 3 * V::N);
      n0 = V::mor(n0, V::isnan(v0));
      n1 = V::mor(n1, V::isnan(v1));
      n2 = V::mor(n2, V::isnan(v2));
      n3 = V::mor(n3, V::isnan(v3));
      a0 = V::max(a0, v0);
      a1 = V::max(a1, v1);
      a2 = V::max(a2, v2);
      a3 = V::max(a3, v3);
    }
    V::store(out + c, V::select(n0, qnan, a0));
    V::store(out + c + V::N, V::select(n1, qnan, a1));
    V::store(out + c + 2 * V::N, V::select(n2, qnan, a2));
    V::store(out + c + 3 * V::N, V::select(n3, qnan, a3));
  }
  for (; c < C; c += V::N) {
    const int64_t n = imin(V::N, C - c);
    F acc = lowest;
    M nan = V::lt(lowest, lowest);
    for (int64_t i = 0; i < n_in; ++i) {
      const F v = V::load_n(in[i] + c, n);
      nan = V::mor(nan, V::isnan(v));
      acc = V::max(acc, v);
    }
    V::store_n(out + c, V::select(nan, qnan, acc), n);
  }
}

// mean over the window (scale = 1 / divisor): four vectors of channels at a time so the adds overlap.
inline void pool_avg_pixel(const float* const* in, int64_t n_in, int64_t C, float scale, float* out) {
  const F sc = V::set1(scale);
  int64_t c = 0;
  for (; c + 4 * V::N <= C; c += 4 * V::N) {
    F a0 = V::zero(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n_in; ++i) {
      const float* p = in[i] + c;
      a0 = V::add(a0, V::load(p));
      a1 = V::add(a1, V::load(p + V::N));
      a2 = V::add(a2, V::load(p + 2 * V::N));
      a3 = V::add(a3, V::load(p + 3 * V::N));
    }
    V::store(out + c, V::mul(a0, sc));
    V::store(out + c + V::N, V::mul(a1, sc));
    V::store(out + c + 2 * V::N, V::mul(a2, sc));
    V::store(out + c + 3 * V::N, V::mul(a3, sc));
  }
  for (; c < C; c += V::N) {
    const int64_t n = imin(V::N, C - c);
    F a = V::zero();
    for (int64_t i = 0; i < n_in; ++i) a = V::add(a, V::load_n(in[i] + c, n));
    V::store_n(out + c, V::mul(a, sc), n);
  }
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
