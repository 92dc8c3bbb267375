// Python bindings of the native CPU kernels. Bindings only: kernels live in csrc/kernels/.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>

#include "common/cpu_features.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "lepton_graph native CPU kernels (no libtorch; raw buffers)";
  m.def(
      "cpu_features",
      []() {
        const auto& f = lg::cpu_features();
        return std::map<std::string, bool>{{"avx2", f.avx2},     {"fma", f.fma},
                                           {"avx512f", f.avx512f}, {"avx512bw", f.avx512bw},
                                           {"avx512vl", f.avx512vl}, {"avx512_vnni", f.avx512_vnni},
                                           {"avx512_bf16", f.avx512_bf16}};
      },
      "Instruction-set extensions detected on this CPU at run time (and honoured by kernel dispatch).");
}
