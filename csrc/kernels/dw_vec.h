// The depthwise conv row kernel (conv.h DwArgs: one output row, channels-last, channel stride 1), written once over
// vec.h's `V`: conv_avx2.cpp and conv_avx512.cpp include it after defining LG_VEC_NS / LG_VEC_ISA.
#pragma once
#include "kernels/conv.h"
#include "kernels/vec.h"

namespace lg::kernels::LG_VEC_NS {
namespace {

inline F dw_load(const float* p, int64_t n) { return n == V::N ? V::load(p) : V::load_n(p, n); }

// NP output pixels of channels [c, c + n): bias + sum over the window taps, then residual / ReLU, stored. NP is a
// template parameter so the accumulators are indexed by constants only (registers, not a stack array).
template <int NP>
inline void dw_pixels(const conv::DwArgs& a, int64_t ow, int64_t c, int64_t n, F bias) {
  F acc[NP];
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p) acc[p] = bias;
  for (int64_t t = 0; t < a.T; ++t) {
    const F w = dw_load(a.w + a.widx[t] * a.C + c, n);
    const float* in = a.taps[t] + ow * a.in_step + c;
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) acc[p] = V::fma(dw_load(in + p * a.in_step, n), w, acc[p]);
  }
  const bool relu = a.act == conv::Act::Relu;
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p) {
    F v = acc[p], r = V::zero();
    if (a.res) {
      r = dw_load(a.res + (ow + p) * a.res_step + c, n);
      if (a.residual_before_act) v = V::add(v, r);
    }
    if (relu) v = V::select(V::lt(v, V::zero()), V::zero(), v);  // NaN stays NaN, like torch.relu
    if (a.res && !a.residual_before_act) v = V::add(v, r);
    float* o = a.out + (ow + p) * a.out_step + c;
    if (n == V::N)
      V::store(o, v);
    else
      V::store_n(o, v, n);
  }
}

inline void conv_dw_row(const conv::DwArgs& a) {
  for (int64_t c = 0; c < a.C; c += V::N) {
    const int64_t n = imin(V::N, a.C - c);
    const F bias = a.bias ? dw_load(a.bias + c, n) : V::zero();
    int64_t ow = 0;
    for (; ow + 4 <= a.nw; ow += 4) dw_pixels<4>(a, ow, c, n, bias);
    switch (a.nw - ow) {
      case 3: dw_pixels<3>(a, ow, c, n, bias); break;
      case 2: dw_pixels<2>(a, ow, c, n, bias); break;
      case 1: dw_pixels<1>(a, ow, c, n, bias); break;
      default: break;
    }
  }
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
