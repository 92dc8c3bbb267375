// Python bindings of the native CPU kernels (lepton_graph._C). Bindings only: kernels live in csrc/kernels/ and
// check their own arguments (std::invalid_argument -> ValueError). Kernels run with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/bindings.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "common/view.h"
#include "kernels/eltwise.h"

namespace py = pybind11;
using py::arg;

namespace {

std::map<std::string, bool> cpu_features_dict() {
  const auto& f = lg::cpu_features();
  return {{"avx2", f.avx2},         {"fma", f.fma},
          {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw},
          {"avx512vl", f.avx512vl}, {"avx512_vnni", f.avx512_vnni},
          {"avx512_bf16", f.avx512_bf16}};
}

py::dict build_info() {
  py::dict info;
  info["openmp"] = lg::kUsesOpenMP;
  info["avx2_kernels"] = bool(LG_HAVE_AVX2_KERNELS);
  info["avx512_kernels"] = bool(LG_HAVE_AVX512_KERNELS);
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = std::string("unknown");
#endif
  return info;
}

// Which variant each kernel family runs now (after the CPU's features, the build and set_max_isa): the fp32
// families follow active_isa(); int8 needs VNNI for its AVX-512 kernels (else the AVX2 ones); bf16 needs
// AVX512_BF16 (else the portable emulation: the same rounded operands, slowly).
std::map<std::string, std::string> kernel_variants() {
  const std::string isa = lg::isa_name(lg::active_isa());
  const bool vnni = LG_HAVE_AVX512_KERNELS && lg::avx512_vnni_active();
  const bool bf16 = LG_HAVE_AVX512_KERNELS && lg::avx512_bf16_active();
  const std::string int8 = vnni ? "avx512vnni" : (isa == "scalar" ? "scalar" : "avx2");
  const std::string b16 = bf16 ? "avx512bf16" : "emulated";
  const std::string wo = isa == "scalar" ? "scalar" : "avx2";  // weight-only: the AVX2 kernels on AVX-512 too
  return {{"gemm_f32", isa}, {"conv_f32", isa},    {"sdpa_f32", isa}, {"eltwise", isa},   {"pool", isa},
          {"gemm_int8", int8}, {"gemm_bf16", b16}, {"conv_bf16", b16}, {"sdpa_bf16", b16},
          {"gemm_wo", wo}};
}

py::dict describe_view(std::uintptr_t data_ptr, const std::string& dtype, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& strides) {
  const lg::TensorView v = lg::make_view(data_ptr, dtype, shape, strides);
  py::dict d;
  d["dtype"] = std::string(lg::dtype_info(v.dtype).name);
  d["itemsize"] = v.itemsize();
  d["numel"] = v.numel();
  d["contiguous"] = v.is_contiguous();
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "lepton_graph native CPU kernels (no libtorch; raw buffers)";

  m.def("cpu_features", &cpu_features_dict,
        "Instruction-set extensions detected on this CPU at run time, after LEPTON_DISABLE_AVX512 / "
        "LEPTON_DISABLE_AVX2 / LEPTON_DISABLE_AVX512_VNNI / LEPTON_DISABLE_AVX512_BF16 (read once, at first use).");
  m.def(
      "kernel_isa", []() { return std::string(lg::isa_name(lg::active_isa())); },
      "The kernel variant dispatch uses now: 'avx512', 'avx2' or 'scalar'.");
  m.def(
      "cache_sizes",
      [] {
        const auto& cs = lg::cache_sizes();
        py::dict d;
        d["l1d"] = cs.l1d;
        d["l2"] = cs.l2;
        d["l3"] = cs.l3;
        d["detected"] = cs.detected;
        return d;
      },
      "Data cache sizes per core in bytes {l1d, l2, l3, detected} from cpuid (leaf 4 / 0x8000001D); the kernels' "
      "cache blocking is derived from them. detected=False: cpuid gave none, the defaults (a Zen 3 core's) stand.");
  m.def("kernel_variants", &kernel_variants,
        "Which variant each kernel family runs now: fp32 families by kernel_isa(); gemm_int8 'avx512vnni', 'avx2' or "
        "'scalar'; the bf16 families 'avx512bf16' or 'emulated'.");
  m.def("set_max_isa", &lg::set_max_isa, arg("name"),
        "Cap kernel dispatch at 'avx512', 'avx2' or 'scalar' (never raises it above what the CPU and build allow).");
  m.def("build_info", &build_info, "How this extension was built: OpenMP, which ISA kernel units, compiler.");
  m.def("set_num_threads", &lg::set_num_threads, arg("n"), "Threads used by native kernels (n >= 1).");
  m.def("get_num_threads", &lg::get_num_threads,
        "Threads used by native kernels (default: the hardware's concurrency).");
  m.def("describe_view", &describe_view, arg("data_ptr"), arg("dtype"), arg("shape"), arg("strides"),
        "Check a raw tensor view as kernels do and describe it: {dtype, itemsize, numel, contiguous}. "
        "Strides are in elements; dtype is str(tensor.dtype) or its bare name.");

  m.def("relu_f32", &lg::kernels::relu_f32, arg("x_ptr"), arg("y_ptr"), arg("n"),
        py::call_guard<py::gil_scoped_release>(),
        "y[i] = max(x[i], 0) over n contiguous float32 at addresses x_ptr, y_ptr (y_ptr == x_ptr is in place).");
  m.def("add_f32", &lg::kernels::add_f32, arg("a_ptr"), arg("b_ptr"), arg("y_ptr"), arg("n"),
        py::call_guard<py::gil_scoped_release>(),
        "y[i] = a[i] + b[i] over n contiguous float32 at addresses a_ptr, b_ptr, y_ptr (y may alias a or b).");

  // kernel families bind themselves (csrc/kernels/*_bind.cpp, LG_BIND)
  for (auto bind : lg::binders()) bind(m);
}
