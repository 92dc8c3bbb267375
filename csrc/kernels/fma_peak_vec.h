// The FMA loop of the peak probe (fma_peak.h), written once over vec.h's V and compiled per ISA unit
// (fma_peak_avx2.cpp, fma_peak_avx512.cpp): kFmaAccumulators independent FMA chains, enough to keep both FMA ports
// busy through the FMA latency.
#pragma once
#include "kernels/fma_peak.h"
#include "kernels/vec.h"

namespace lg::kernels::LG_VEC_NS {
namespace {

inline float fma_loop(int64_t iters) {
  V::F acc[probe::kFmaAccumulators];
  for (auto& a : acc) a = V::set1(1.0f);
  const V::F x = V::set1(0.999999f), y = V::set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = V::fma(a, x, y);
  }
  V::F s = acc[0];
  for (int64_t j = 1; j < probe::kFmaAccumulators; ++j) s = V::add(s, acc[j]);
  return V::reduce_add(s);
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
