// Python bindings of the data movement kernels (csrc/kernels/movement.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/bindings.h"
#include "kernels/movement.h"

namespace py = pybind11;
using py::arg;

LG_BIND(movement) {
  m.def("copy_strided", &lg::kernels::copy_strided, arg("src_ptr"), arg("dst_ptr"), arg("itemsize"), arg("shape"),
        arg("src_strides"), arg("dst_strides"), py::call_guard<py::gil_scoped_release>(),
        "dst[idx] = src[idx] over shape; strides in elements; itemsize 1, 2, 4 or 8.");
  m.def("gather_rows", &lg::kernels::gather_rows, arg("x_ptr"), arg("index_ptr"), arg("out_ptr"), arg("itemsize"),
        arg("outer"), arg("rows"), arg("inner"), arg("n"), arg("index_is_i64"), arg("allow_negative") = true,
        py::call_guard<py::gil_scoped_release>(),
        "out[o, j, :] = x[o, index[j], :] (x contiguous [outer, rows, inner]); out-of-range indices raise.");
  m.def("fill", &lg::kernels::fill, arg("out_ptr"), arg("itemsize"), arg("n"), arg("bits"),
        py::call_guard<py::gil_scoped_release>(), "out[i] = the itemsize-byte pattern bits, for i < n.");
  m.def("arange", &lg::kernels::arange, arg("out_ptr"), arg("dtype"), arg("n"), arg("start"), arg("step"),
        py::call_guard<py::gil_scoped_release>(), "out[i] = start + i * step (in double, then cast).");
}
