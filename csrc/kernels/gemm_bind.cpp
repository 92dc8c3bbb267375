// Python bindings of the GEMM family (lepton_graph._C.gemm_*). Raw addresses and sizes; every argument is checked
// (ValueError naming it) and the kernels run with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/bindings.h"
#include "common/check.h"
#include "common/view.h"
#include "kernels/epilogue_bind.h"
#include "kernels/gemm.h"
#include "kernels/gemm_driver.h"

namespace py = pybind11;
using py::arg;

namespace {

// The Python-visible handle of a packed B operand (keeps the packed buffer alive).
struct PyPackedB {
  std::shared_ptr<lg::gemm::PackedB> p;
};


PyPackedB pack_b(std::uintptr_t b_ptr, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n, bool bf16,
                 bool huge_pages) {
  LG_CHECK_BUFFER(b_ptr, float, K * N);
  const auto* b = reinterpret_cast<const float*>(b_ptr);
  return PyPackedB{bf16 ? lg::gemm::pack_b_bf16(b, K, N, stride_k, stride_n, huge_pages)
                        : lg::gemm::pack_b_f32(b, K, N, stride_k, stride_n, huge_pages)};
}

void gemm_packed(std::uintptr_t a_ptr, int64_t M, int64_t K, int64_t lda, const PyPackedB& packed,
                 std::uintptr_t c_ptr, int64_t ldc, std::uintptr_t bias_ptr, std::uintptr_t residual_ptr,
                 int64_t ld_residual, bool residual_before_act, int act) {
  LG_CHECK(packed.p != nullptr, packed, "is empty");
  LG_CHECK_BUFFER(a_ptr, float, M * K);
  LG_CHECK_BUFFER(c_ptr, float, M * lg::gemm::packed_n(*packed.p));
  const auto ep = lg::gemm::make_epilogue(bias_ptr, residual_ptr, ld_residual, residual_before_act, act);
  const auto* a = reinterpret_cast<const float*>(a_ptr);
  auto* c = reinterpret_cast<float*>(c_ptr);
  if (lg::gemm::packed_is_bf16(*packed.p))
    lg::gemm::gemm_bf16_packed(a, M, K, lda, *packed.p, c, ldc, ep);
  else
    lg::gemm::gemm_f32_packed(a, M, K, lda, *packed.p, c, ldc, ep);
}

void gemm(std::uintptr_t a_ptr, int64_t lda_m, int64_t lda_k, std::uintptr_t b_ptr, int64_t ldb_k, int64_t ldb_n,
          std::uintptr_t c_ptr, int64_t ldc, int64_t M, int64_t N, int64_t K, std::uintptr_t bias_ptr,
          std::uintptr_t residual_ptr, int64_t ld_residual, bool residual_before_act, int act, bool threads) {
  LG_CHECK_BUFFER(a_ptr, float, M * K);
  LG_CHECK_BUFFER(b_ptr, float, K * N);
  LG_CHECK_BUFFER(c_ptr, float, M * N);
  const auto ep = lg::gemm::make_epilogue(bias_ptr, residual_ptr, ld_residual, residual_before_act, act);
  lg::gemm::gemm_f32(reinterpret_cast<const float*>(a_ptr), lda_m, lda_k, reinterpret_cast<const float*>(b_ptr),
                     ldb_k, ldb_n, reinterpret_cast<float*>(c_ptr), ldc, M, N, K, ep, threads);
}

void gemm_batched(const std::vector<int64_t>& batch_shape, std::uintptr_t a_ptr,
                  const std::vector<int64_t>& a_batch_strides, int64_t lda_m, int64_t lda_k, std::uintptr_t b_ptr,
                  const std::vector<int64_t>& b_batch_strides, int64_t ldb_k, int64_t ldb_n, std::uintptr_t c_ptr,
                  const std::vector<int64_t>& c_batch_strides, int64_t ldc, int64_t M, int64_t N, int64_t K,
                  std::uintptr_t bias_ptr, int act) {
  int64_t batches = 1;  // an empty batch reads and writes nothing: its operands may be null
  for (const int64_t d : batch_shape) batches *= d;
  if (batches != 0) {
    LG_CHECK_BUFFER(a_ptr, float, M * K);
    LG_CHECK_BUFFER(b_ptr, float, K * N);
    LG_CHECK_BUFFER(c_ptr, float, M * N);
  }
  const auto ep = lg::gemm::make_epilogue(bias_ptr, 0, 0, false, act);
  lg::gemm::gemm_f32_batched(batch_shape, reinterpret_cast<const float*>(a_ptr), a_batch_strides, lda_m, lda_k,
                             reinterpret_cast<const float*>(b_ptr), b_batch_strides, ldb_k, ldb_n,
                             reinterpret_cast<float*>(c_ptr), c_batch_strides, ldc, M, N, K, ep);
}

}  // namespace

LG_BIND(gemm) {
  {
    py::enum_<lg::gemm::Act> act(m, "Act", "The activation codes of the GEMM and conv epilogues (act= arguments).");
    for (int code = 0; code < lg::gemm::kNumActs; ++code)
      act.value(lg::gemm::kActNames[code], static_cast<lg::gemm::Act>(code));
  }
  m.def(
      "gemm_set_blocking",
      [](int64_t kc, int64_t mc) {
        LG_CHECK((kc == 0 || kc >= 8) && mc >= 0, kc, "must be 0 or >= 8 and mc >= 0, got ", kc, ", ", mc);
        if (kc == 0) kc = lg::gemm::detail::default_kc();
        lg::gemm::detail::blocking().kc.store(kc);
        lg::gemm::detail::blocking().mc.store(mc == 0 ? lg::gemm::detail::derived_mc(kc) : mc);
      },
      arg("kc"), arg("mc"),
      "Cache blocking of the fp32/bf16 GEMM: k rows per K slice and rows per block (from lepton_graph.config); 0 "
      "takes the value derived from the CPU's caches (cache_sizes()).");
  m.def(
      "gemm_set_dynamic_panels", [](bool on) { lg::gemm::detail::dynamic_panels().store(on); }, arg("on"),
      "GEMMs split over N across threads (every thread packs all of A) claim their panels at run time in guided "
      "chunks (True, the default) or take a fixed share each (False: for A/B measurements). From "
      "lepton_graph.config (LEPTON_GEMM_DYNAMIC_PANELS).");
  m.def("gemm_dynamic_panels", [] { return lg::gemm::detail::dynamic_panels().load(); },
        "Whether GEMMs split over N claim their panels at run time (gemm_set_dynamic_panels).");
  m.def("gemm_blocking", [] {
    return py::make_tuple(lg::gemm::detail::blocking().kc.load(), lg::gemm::detail::blocking().mc.load());
  });
  py::class_<PyPackedB>(m, "PackedB",
                        "A GEMM B operand (K x N) packed once into the micro-kernel's panel layout (f32 or bf16).")
      .def_property_readonly("k", [](const PyPackedB& p) { return lg::gemm::packed_k(*p.p); })
      .def_property_readonly("n", [](const PyPackedB& p) { return lg::gemm::packed_n(*p.p); })
      .def_property_readonly("bf16", [](const PyPackedB& p) { return lg::gemm::packed_is_bf16(*p.p); })
      .def_property_readonly("nbytes", [](const PyPackedB& p) { return lg::gemm::packed_nbytes(*p.p); })
      .def_property_readonly(
          "data_ptr", [](const PyPackedB& p) { return reinterpret_cast<std::uintptr_t>(lg::gemm::packed_data(*p.p)); },
          "Address of the packed words (nbytes of them; an f32 packing is portable across ISAs: artifacts store it).");
  m.def("gemm_packed_f32_nbytes", &lg::gemm::packed_f32_nbytes, arg("K"), arg("N"),
        "Bytes of a K x N f32 B packed by gemm_pack_b_f32 (the same on every ISA).");
  m.def(
      "gemm_packed_b_f32_from",
      [](std::uintptr_t words_ptr, int64_t nbytes, int64_t K, int64_t N, bool borrow, bool huge_pages) {
        LG_CHECK(nbytes >= 0, nbytes, "must be >= 0, got ", nbytes);
        LG_CHECK_BUFFER(words_ptr, uint8_t, nbytes);
        return PyPackedB{lg::gemm::packed_b_f32_from(reinterpret_cast<const void*>(words_ptr), nbytes, K, N, borrow,
                                                     huge_pages)};
      },
      arg("words_ptr"), arg("nbytes"), arg("K"), arg("N"), arg("borrow"), arg("huge_pages") = true,
      py::call_guard<py::gil_scoped_release>(),
      "A PackedB over nbytes of f32 panels written by gemm_pack_b_f32 (size checked against K x N): borrow=True "
      "reads them in place (64-byte aligned; the caller keeps the memory alive and unchanged), else copies.");

  m.def(
      "gemm_pack_b_f32",
      [](std::uintptr_t b_ptr, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n, bool huge_pages) {
        return pack_b(b_ptr, K, N, stride_k, stride_n, false, huge_pages);
      },
      arg("b_ptr"), arg("K"), arg("N"), arg("stride_k"), arg("stride_n"), arg("huge_pages") = true,
      py::call_guard<py::gil_scoped_release>(),
      "Pack B (K x N float32, element (k, n) at b_ptr[k * stride_k + n * stride_n]) for gemm_packed.");
  m.def(
      "gemm_pack_b_bf16",
      [](std::uintptr_t b_ptr, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n, bool huge_pages) {
        return pack_b(b_ptr, K, N, stride_k, stride_n, true, huge_pages);
      },
      arg("b_ptr"), arg("K"), arg("N"), arg("stride_k"), arg("stride_n"), arg("huge_pages") = true,
      py::call_guard<py::gil_scoped_release>(),
      "Pack B rounded to bf16 (mixed precision: A rounded on the fly, fp32 accumulation) for gemm_packed.");
  m.def("gemm_packed", &gemm_packed, arg("a_ptr"), arg("M"), arg("K"), arg("lda"), arg("packed"), arg("c_ptr"),
        arg("ldc"), arg("bias_ptr") = 0, arg("residual_ptr") = 0, arg("ld_residual") = 0,
        arg("residual_before_act") = false, arg("act") = 0, py::call_guard<py::gil_scoped_release>(),
        "C (M x N, row stride ldc) = epilogue(A (M x K, row stride lda) x packed B); f32 or bf16 per the packing. "
        "epilogue(v) = act(v + bias[n] (+ residual if residual_before_act)) (+ residual otherwise); act: 0 none, "
        "1 relu, 2 gelu (erf), 3 gelu (tanh), 4 silu, 5 tanh, 6 sigmoid.");
  m.def("gemm_f32", &gemm, arg("a_ptr"), arg("lda_m"), arg("lda_k"), arg("b_ptr"), arg("ldb_k"), arg("ldb_n"),
        arg("c_ptr"), arg("ldc"), arg("M"), arg("N"), arg("K"), arg("bias_ptr") = 0, arg("residual_ptr") = 0,
        arg("ld_residual") = 0, arg("residual_before_act") = false, arg("act") = 0, arg("threads") = true,
        py::call_guard<py::gil_scoped_release>(),
        "C = epilogue(A x B) with general strides for A and B (both at run time); see gemm_packed.");
  m.def("gemm_f32_batched", &gemm_batched, arg("batch_shape"), arg("a_ptr"), arg("a_batch_strides"), arg("lda_m"),
        arg("lda_k"), arg("b_ptr"), arg("b_batch_strides"), arg("ldb_k"), arg("ldb_n"), arg("c_ptr"),
        arg("c_batch_strides"), arg("ldc"), arg("M"), arg("N"), arg("K"), arg("bias_ptr") = 0, arg("act") = 0,
        py::call_guard<py::gil_scoped_release>(),
        "Batched gemm_f32: batch strides per operand (0 broadcasts), row-major over batch_shape.");
  m.def("gemm_bf16_supported", &lg::gemm::bf16_supported,
        "True when gemm_pack_b_bf16 operands run on AVX512_BF16 hardware (else a slow portable emulation).");
}
