// Python bindings of the fused attention kernel (see attention.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "common/bindings.h"
#include "kernels/attention.h"

namespace py = pybind11;
using py::arg;

namespace {

using Strides = std::array<int64_t, 4>;

void sdpa_f32_binding(std::uintptr_t q_ptr, const Strides& q_strides, std::uintptr_t k_ptr, const Strides& k_strides,
                      std::uintptr_t v_ptr, const Strides& v_strides, std::uintptr_t out_ptr,
                      const Strides& out_strides, std::uintptr_t mask_ptr, int mask_kind, const Strides& mask_strides,
                      int64_t B, int64_t Hq, int64_t Hkv, int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal,
                      double scale) {
  lg::kernels::sdpa_f32(q_ptr, q_strides.data(), k_ptr, k_strides.data(), v_ptr, v_strides.data(), out_ptr,
                        out_strides.data(), mask_ptr, mask_kind, mask_strides.data(), B, Hq, Hkv, L, S, E, Ev,
                        is_causal, scale);
}

void sdpa_bf16_binding(std::uintptr_t q_ptr, const Strides& q_strides, std::uintptr_t k_ptr,
                       const Strides& k_strides, std::uintptr_t v_ptr, const Strides& v_strides, std::uintptr_t out_ptr,
                       const Strides& out_strides, std::uintptr_t mask_ptr, int mask_kind,
                       const Strides& mask_strides, int64_t B, int64_t Hq, int64_t Hkv, int64_t L, int64_t S,
                       int64_t E, int64_t Ev, bool is_causal, double scale) {
  lg::kernels::sdpa_bf16(q_ptr, q_strides.data(), k_ptr, k_strides.data(), v_ptr, v_strides.data(), out_ptr,
                         out_strides.data(), mask_ptr, mask_kind, mask_strides.data(), B, Hq, Hkv, L, S, E, Ev,
                         is_causal, scale);
}

}  // namespace

LG_BIND(attention) {
  m.def("sdpa_f32", &sdpa_f32_binding, arg("q_ptr"), arg("q_strides"), arg("k_ptr"), arg("k_strides"), arg("v_ptr"),
        arg("v_strides"), arg("out_ptr"), arg("out_strides"), arg("mask_ptr"), arg("mask_kind"),
        arg("mask_strides"), arg("B"), arg("Hq"), arg("Hkv"), arg("L"), arg("S"), arg("E"), arg("Ev"),
        arg("is_causal"), arg("scale"), py::call_guard<py::gil_scoped_release>(),
        "Fused scaled-dot-product attention, float32: out (B, Hq, L, Ev) = softmax(scale * q k^T + mask) v.\n"
        "q (B, Hq, L, E), k (B, Hkv, S, E), v (B, Hkv, S, Ev), out: strided views given by address and 4 element "
        "strides (unit last stride); Hq a multiple of Hkv (GQA). mask_kind 0 = none, 1 = bool (True keeps, 1 "
        "byte), 2 = float (added), a (B, Hq, L, S) view (stride 0 on broadcast dims). is_causal keeps key j <= "
        "query i (and combines with the mask). Rows with every key masked give 0, like torch.");
  m.def("sdpa_bf16", &sdpa_bf16_binding, arg("q_ptr"), arg("q_strides"), arg("k_ptr"), arg("k_strides"),
        arg("v_ptr"), arg("v_strides"), arg("out_ptr"), arg("out_strides"), arg("mask_ptr"), arg("mask_kind"),
        arg("mask_strides"), arg("B"), arg("Hq"), arg("Hkv"), arg("L"), arg("S"), arg("E"), arg("Ev"),
        arg("is_causal"), arg("scale"), py::call_guard<py::gil_scoped_release>(),
        "sdpa_f32 in mixed precision: Q.K^T and P.V on bf16-rounded operands (AVX512_BF16), fp32 accumulation, "
        "softmax and output (relative error ~1e-2). The exact fp32 kernel when sdpa_bf16_supported() is False.");
  m.def("sdpa_bf16_supported", &lg::kernels::sdpa_bf16_supported,
        "True when sdpa_bf16 runs on AVX512_BF16 hardware (else it is sdpa_f32).");
}
