// Per-family Python bindings without a shared edit point: a family's *_bind.cpp (portable, in csrc/kernels/)
// registers itself with LG_BIND(name) { m.def(...); } and module.cpp runs every registered binder.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

namespace lg {

using BindFn = void (*)(pybind11::module_&);

inline std::vector<BindFn>& binders() {
  static std::vector<BindFn> all;
  return all;
}

struct Binder {
  explicit Binder(BindFn fn) { binders().push_back(fn); }
};

}  // namespace lg

#define LG_BIND(name)                                               \
  static void lg_bind_##name(pybind11::module_& m);                 \
  static const ::lg::Binder lg_binder_##name(&lg_bind_##name);      \
  static void lg_bind_##name(pybind11::module_& m)
