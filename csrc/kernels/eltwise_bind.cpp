// Python bindings of the program interpreter (fused elementwise / norm / softmax), reductions and data movement.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "common/bindings.h"
#include "common/check.h"
#include "common/threadpool.h"
#include "kernels/movement.h"
#include "kernels/program.h"

namespace py = pybind11;
using py::arg;

LG_BIND(eltwise_program) {
  py::class_<lg::kernels::Program>(m, "Program",
                                   "A compiled elementwise program (see csrc/kernels/program.h): built once from "
                                   "an instruction list, run many times on raw buffers.")
      .def(py::init<const std::vector<int64_t>&, const std::vector<double>&, int64_t, const std::vector<std::string>&,
                    const std::vector<std::string>&, bool>(),
           arg("code"), arg("consts"), arg("nregs"), arg("in_dtypes"), arg("out_dtypes"), arg("row_mode") = false)
      .def("run", &lg::kernels::Program::run, arg("in_ptrs"), arg("in_shapes"), arg("in_strides"), arg("out_shape"),
           arg("out_ptrs"), py::call_guard<py::gil_scoped_release>(),
           "Run over out_shape: inputs broadcast (strides in elements), outputs contiguous.")
      .def("bind", [](const lg::kernels::Program& prog, const std::vector<std::vector<int64_t>>& in_shapes,
                      const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape) {
             return std::make_unique<lg::kernels::BoundProgram>(prog, in_shapes, in_strides, out_shape);
           }, arg("in_shapes"), arg("in_strides"), arg("out_shape"),
           "This program with its input shapes/strides and output shape fixed: a BoundProgram whose run() takes "
           "only data pointers.")
      .def_property_readonly("num_inputs", &lg::kernels::Program::num_inputs)
      .def_property_readonly("num_outputs", &lg::kernels::Program::num_outputs)
      .def("__repr__", &lg::kernels::Program::describe);
  py::class_<lg::kernels::BoundProgram>(m, "BoundProgram",
                                        "A Program bound to fixed shapes (Program.bind): run(*ptrs) with the inputs' "
                                        "then the outputs' data pointers.")
      .def("run", [](const lg::kernels::BoundProgram& b, py::args ptrs) {
             std::uintptr_t p[2 * lg::kernels::kProgMaxIO];
             const size_t n = ptrs.size();
             if (n > 2 * size_t(lg::kernels::kProgMaxIO))
               lg::detail::fail_check("BoundProgram.run", "ptrs", "has ", n, " entries");
             for (size_t i = 0; i < n; ++i) {
               PyObject* o = PyTuple_GET_ITEM(ptrs.ptr(), i);
               if (!PyLong_Check(o)) lg::detail::fail_check("BoundProgram.run", "ptrs", "entry ", i, " is not an int");
               p[i] = static_cast<std::uintptr_t>(PyLong_AsUnsignedLongLong(o));
               if (PyErr_Occurred()) {
                 PyErr_Clear();
                 lg::detail::fail_check("BoundProgram.run", "ptrs", "entry ", i, " is not a valid pointer");
               }
             }
             py::gil_scoped_release nogil;
             b.run(p, n);
           }, "Run on raw pointers: the inputs' data pointers, then the outputs' (contiguous).")
      .def_property_readonly("num_inputs", &lg::kernels::BoundProgram::num_inputs)
      .def_property_readonly("num_outputs", &lg::kernels::BoundProgram::num_outputs)
      .def_property_readonly("numel", &lg::kernels::BoundProgram::numel);
  m.def("set_program_stream_bytes", [](int64_t bytes) { lg::kernels::program_stream_min_bytes().store(bytes); },
        arg("bytes"), "Programs bound/run afterwards write outputs of >= bytes with non-temporal stores (0: never, "
        "the default: slower than plain stores on the machines measured).");
  m.def("parallel_overhead_ns", [] { return lg::parallel_overhead().ema_ns.load(); },
        "The measured fork/join overhead of parallel_for_work (moving average, ns): large while oversubscribed.");
  m.def("set_parallel_guard", [](bool enabled) { lg::parallel_guard_enabled().store(enabled); }, arg("enabled"),
        "Switch the oversubscription guard of parallel_for_work on/off (default on; for benchmarks).");
  m.def("reduce_f32", &lg::kernels::reduce_f32, arg("fn"), arg("x_ptr"), arg("out_ptr"), arg("outer"), arg("red"),
        arg("inner"), py::call_guard<py::gil_scoped_release>(),
        "out[o, i] = fn over r of x[o, r, i] ('sum', 'mean', 'amax', 'amin'); x contiguous f32 [outer, red, inner].");
  m.def("argmax_f32", &lg::kernels::argmax_f32, arg("x_ptr"), arg("out_ptr"), arg("outer"), arg("red"), arg("inner"),
        py::call_guard<py::gil_scoped_release>(),
        "out[o, i] = argmax over r of x[o, r, i] as int64 (first maximum; NaN counts as the maximum).");
}
