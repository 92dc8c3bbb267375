// Python bindings of the int8 GEMM family (lepton_graph._C.gemm_*s8*). Raw addresses and sizes; every argument is
// checked (ValueError naming it) and the kernels run with the GIL released.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "common/bindings.h"
#include "common/check.h"
#include "common/view.h"
#include "kernels/epilogue_bind.h"
#include "kernels/gemm_int8.h"

namespace py = pybind11;
using py::arg;

namespace {

struct PyPackedS8 {
  std::shared_ptr<lg::gemm::PackedS8> p;
};


const lg::gemm::PackedS8& packed_of(const PyPackedS8& packed) {
  LG_CHECK(packed.p != nullptr, packed, "is empty");
  return *packed.p;
}

}  // namespace

LG_BIND(gemm_int8) {
  m.attr("GEMM_INT8_MAX_K") = lg::gemm::kMaxKInt8;
  py::class_<PyPackedS8>(m, "PackedS8",
                         "An int8 GEMM B operand (K x N int8 with per-column scales) packed for vpdpbusd.")
      .def_property_readonly("k", [](const PyPackedS8& p) { return lg::gemm::packed_s8_k(packed_of(p)); })
      .def_property_readonly("n", [](const PyPackedS8& p) { return lg::gemm::packed_s8_n(packed_of(p)); })
      .def_property_readonly("nbytes", [](const PyPackedS8& p) { return lg::gemm::packed_s8_nbytes(packed_of(p)); });

  m.def(
      "gemm_pack_b_s8",
      [](std::uintptr_t b_ptr, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n, std::uintptr_t scales_ptr) {
        LG_CHECK_BUFFER(b_ptr, int8_t, K * N);
        LG_CHECK_BUFFER(scales_ptr, float, N);
        return PyPackedS8{lg::gemm::pack_b_s8(reinterpret_cast<const int8_t*>(b_ptr), K, N, stride_k, stride_n,
                                              reinterpret_cast<const float*>(scales_ptr))};
      },
      arg("b_ptr"), arg("K"), arg("N"), arg("stride_k"), arg("stride_n"), arg("scales_ptr"),
      py::call_guard<py::gil_scoped_release>(),
      "Pack B8 (K x N int8, element (k, n) at b_ptr[k * stride_k + n * stride_n]) with N float32 per-column scales "
      "for gemm_u8s8_dynamic / gemm_u8s8s32. K <= 65536 (int32 sums cannot overflow).");
  m.def(
      "gemm_u8s8_dynamic",
      [](std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, const PyPackedS8& packed, std::uintptr_t c_ptr,
         int64_t ldc, std::uintptr_t bias_ptr, std::uintptr_t residual_ptr, int64_t ld_residual,
         bool residual_before_act, int act) {
        const auto& b = packed_of(packed);
        LG_CHECK_BUFFER(a_ptr, float, M * K);
        LG_CHECK_BUFFER(c_ptr, float, M * lg::gemm::packed_s8_n(b));
        const auto ep = lg::gemm::make_epilogue(bias_ptr, residual_ptr, ld_residual, residual_before_act, act);
        lg::gemm::gemm_u8s8_dynamic(reinterpret_cast<const float*>(a_ptr), M, K, lda, b,
                                    reinterpret_cast<float*>(c_ptr), ldc, ep);
      },
      arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("packed"), arg("c_ptr"), arg("ldc"), arg("bias_ptr") = 0,
      arg("residual_ptr") = 0, arg("ld_residual") = 0, arg("residual_before_act") = false, arg("act") = 0,
      py::call_guard<py::gil_scoped_release>(),
      "C (M x N, row stride ldc) = epilogue(dequant(u8 rows of A quantised at run time x packed s8 B)); A is float32 "
      "(M x K, row stride lda); the epilogue as gemm_packed's.");
  m.def(
      "gemm_u8s8_static",
      [](std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, const PyPackedS8& packed, float scale,
         int32_t zero_point, std::uintptr_t c_ptr, int64_t ldc, std::uintptr_t bias_ptr, std::uintptr_t residual_ptr,
         int64_t ld_residual, bool residual_before_act, int act) {
        const auto& b = packed_of(packed);
        LG_CHECK_BUFFER(a_ptr, float, M * K);
        LG_CHECK_BUFFER(c_ptr, float, M * lg::gemm::packed_s8_n(b));
        const auto ep = lg::gemm::make_epilogue(bias_ptr, residual_ptr, ld_residual, residual_before_act, act);
        lg::gemm::gemm_u8s8_static(reinterpret_cast<const float*>(a_ptr), M, K, lda, b, scale, zero_point,
                                   reinterpret_cast<float*>(c_ptr), ldc, ep);
      },
      arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("packed"), arg("scale"), arg("zero_point"), arg("c_ptr"),
      arg("ldc"), arg("bias_ptr") = 0, arg("residual_ptr") = 0, arg("ld_residual") = 0,
      arg("residual_before_act") = false, arg("act") = 0, py::call_guard<py::gil_scoped_release>(),
      "gemm_u8s8_dynamic with A quantised by one calibrated scale and zero point for every row (int8-static): "
      "q = clamp(rint(a * (1 / scale)) + zero_point, 0, 255).");
  m.def(
      "gemm_u8s8s32",
      [](std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, const PyPackedS8& packed, std::uintptr_t c_ptr,
         int64_t ldc) {
        const auto& b = packed_of(packed);
        LG_CHECK_BUFFER(a_ptr, uint8_t, M * K);
        LG_CHECK_BUFFER(c_ptr, int32_t, M * lg::gemm::packed_s8_n(b));
        lg::gemm::gemm_u8s8s32(reinterpret_cast<const uint8_t*>(a_ptr), M, K, lda, b,
                               reinterpret_cast<int32_t*>(c_ptr), ldc);
      },
      arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("packed"), arg("c_ptr"), arg("ldc"),
      py::call_guard<py::gil_scoped_release>(),
      "C32 (M x N int32) = A8 (M x K uint8, row stride lda) x packed s8 B: the exact integer core.");
  m.def(
      "quantize_rows_u8",
      [](std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, std::uintptr_t q_ptr, int64_t ldq,
         std::uintptr_t scales_ptr, std::uintptr_t zp_ptr) {
        LG_CHECK_BUFFER(a_ptr, float, M * K);
        LG_CHECK_BUFFER(q_ptr, uint8_t, M * K);
        LG_CHECK_BUFFER(scales_ptr, float, M);
        LG_CHECK_BUFFER(zp_ptr, int32_t, M);
        lg::gemm::quantize_rows_u8(reinterpret_cast<const float*>(a_ptr), M, K, lda,
                                   reinterpret_cast<uint8_t*>(q_ptr), ldq, reinterpret_cast<float*>(scales_ptr),
                                   reinterpret_cast<int32_t*>(zp_ptr));
      },
      arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("q_ptr"), arg("ldq"), arg("scales_ptr"), arg("zp_ptr"),
      py::call_guard<py::gil_scoped_release>(),
      "The row quantisation of gemm_u8s8_dynamic: asymmetric u8 per row over [min(0, min), max(0, max)]; writes q "
      "(M x K, row stride ldq), M float32 scales and M int32 zero points.");
}
