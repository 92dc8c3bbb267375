// The GEMM epilogue from the binding arguments every GEMM family takes (bias, residual, activation), checked.
// Portable code for the *_bind.cpp units only.
#pragma once
#include <cstdint>
#include <string>

#include "common/check.h"
#include "common/view.h"
#include "kernels/gemm.h"

namespace lg::gemm {

// "none, relu, ..." for messages.
inline std::string act_names() {
  std::string s;
  for (int code = 0; code < kNumActs; ++code) s += (code ? ", " : "") + std::string(kActNames[code]);
  return s;
}

inline Epilogue make_epilogue(std::uintptr_t bias_ptr, std::uintptr_t residual_ptr, int64_t ld_residual,
                              bool residual_before_act, int act) {
  LG_CHECK_BUFFER(bias_ptr, float, 0);
  LG_CHECK_BUFFER(residual_ptr, float, 0);
  LG_CHECK(valid_act(act), act, "must be in [0, ", kNumActs - 1, "] (the codes of _C.Act: ", act_names(), "), got ",
           act);
  LG_CHECK(ld_residual >= 0, ld_residual, "must be >= 0, got ", ld_residual);
  Epilogue ep;
  ep.bias = reinterpret_cast<const float*>(bias_ptr);
  ep.residual = reinterpret_cast<const float*>(residual_ptr);
  ep.ld_residual = ld_residual;
  ep.residual_before_act = residual_before_act;
  ep.act = static_cast<Act>(act);
  return ep;
}

}  // namespace lg::gemm
