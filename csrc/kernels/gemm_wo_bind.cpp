// Python bindings of the weight-only GEMM (lepton_graph._C.gemm_*wo*). Raw addresses and sizes; every argument is
// checked (ValueError naming it) and the kernels run with the GIL released.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "common/bindings.h"
#include "common/check.h"
#include "common/view.h"
#include "kernels/epilogue_bind.h"
#include "kernels/gemm_wo.h"

namespace py = pybind11;
using py::arg;

namespace {

struct PyPackedWo {
  std::shared_ptr<lg::gemm::PackedWo> p;
};

const lg::gemm::PackedWo& packed_of(const PyPackedWo& packed) {
  LG_CHECK(packed.p != nullptr, packed, "is empty");
  return *packed.p;
}

}  // namespace

LG_BIND(gemm_wo) {
  py::class_<PyPackedWo>(m, "PackedWo",
                         "A weight-only quantised GEMM B operand (int8 per channel or group, int4 per group).")
      .def_property_readonly("k", [](const PyPackedWo& p) { return lg::gemm::packed_wo_k(packed_of(p)); })
      .def_property_readonly("n", [](const PyPackedWo& p) { return lg::gemm::packed_wo_n(packed_of(p)); })
      .def_property_readonly("bits", [](const PyPackedWo& p) { return lg::gemm::packed_wo_bits(packed_of(p)); })
      .def_property_readonly("group", [](const PyPackedWo& p) { return lg::gemm::packed_wo_group(packed_of(p)); })
      .def_property_readonly("nbytes", [](const PyPackedWo& p) { return lg::gemm::packed_wo_nbytes(packed_of(p)); });

  m.def(
      "gemm_pack_b_wo",
      [](std::uintptr_t q_ptr, int64_t K, int64_t N, int64_t ldq, int bits, int64_t group, std::uintptr_t scales_ptr,
         int64_t n_groups, std::uintptr_t zeros_ptr) {
        LG_CHECK(n_groups >= 1, n_groups, "must be >= 1, got ", n_groups);
        const int64_t row_bytes = bits == 8 ? K : (K + 1) / 2;
        LG_CHECK_BUFFER(q_ptr, uint8_t, N > 0 && K > 0 ? (N - 1) * ldq + row_bytes : 0);
        LG_CHECK_BUFFER(scales_ptr, float, N * n_groups);
        LG_CHECK_BUFFER(zeros_ptr, uint8_t, 0);
        const int64_t g_eff = group == 0 ? K : group;
        LG_CHECK(K == 0 || n_groups == (K + g_eff - 1) / std::max<int64_t>(g_eff, 1), n_groups, "is ", n_groups,
                 " but K = ", K, " in groups of ", g_eff, " makes ", (K + g_eff - 1) / std::max<int64_t>(g_eff, 1));
        return PyPackedWo{lg::gemm::pack_b_wo(reinterpret_cast<const uint8_t*>(q_ptr), K, N, ldq, bits, group,
                                              reinterpret_cast<const float*>(scales_ptr),
                                              reinterpret_cast<const uint8_t*>(zeros_ptr))};
      },
      arg("q_ptr"), arg("K"), arg("N"), arg("ldq"), arg("bits"), arg("group"), arg("scales_ptr"), arg("n_groups"),
      arg("zeros_ptr") = 0, py::call_guard<py::gil_scoped_release>(),
      "Pack a weight-only quantised weight (nn.Linear layout N x K): int8 q (row stride ldq bytes) or int4 two per "
      "byte (k even in the low nibble), N x n_groups float32 scales, for int4 N x n_groups uint8 zero points (0: "
      "8). w[n, k] = (q - z) * s of group k / group; group 0 = one per channel (int8).");
  m.def(
      "gemm_wo_packed",
      [](std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, const PyPackedWo& packed, std::uintptr_t c_ptr,
         int64_t ldc, std::uintptr_t bias_ptr, std::uintptr_t residual_ptr, int64_t ld_residual,
         bool residual_before_act, int act) {
        const auto& b = packed_of(packed);
        LG_CHECK_BUFFER(a_ptr, float, M * K);
        LG_CHECK_BUFFER(c_ptr, float, M * lg::gemm::packed_wo_n(b));
        const auto ep = lg::gemm::make_epilogue(bias_ptr, residual_ptr, ld_residual, residual_before_act, act);
        lg::gemm::gemm_wo_packed(reinterpret_cast<const float*>(a_ptr), M, K, lda, b, reinterpret_cast<float*>(c_ptr),
                                 ldc, ep);
      },
      arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("packed"), arg("c_ptr"), arg("ldc"), arg("bias_ptr") = 0,
      arg("residual_ptr") = 0, arg("ld_residual") = 0, arg("residual_before_act") = false, arg("act") = 0,
      py::call_guard<py::gil_scoped_release>(),
      "C (M x N, row stride ldc) = epilogue(A (M x K float32, row stride lda) x dequant(packed B)); the epilogue as "
      "gemm_packed's.");
}
