// Argument checks for kernel entry points. A failed check throws std::invalid_argument whose message names the
// function and the argument (pybind11 turns it into ValueError), e.g. "relu_f32: argument 'n' must be >= 0, got -1".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lg::detail {

template <class... Parts>
[[noreturn]] void fail_check(const char* func, const char* arg, const Parts&... parts) {
  std::ostringstream msg;
  msg << func << ": argument '" << arg << "' ";
  (msg << ... << parts);
  throw std::invalid_argument(msg.str());
}

}  // namespace lg::detail

// LG_CHECK(cond, arg, message parts...): `arg` is the parameter's own name (stringified, so it cannot drift from
// the signature); the parts are streamed after it.
#define LG_CHECK(cond, arg, ...)                                   \
  do {                                                             \
    if (!(cond)) ::lg::detail::fail_check(__func__, #arg, __VA_ARGS__); \
  } while (0)
