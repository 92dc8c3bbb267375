// Elementwise f32 kernels: argument checks, threading and ISA dispatch (portable code; see eltwise.h).
#include "kernels/eltwise.h"

#include <cstdint>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "common/view.h"

namespace lg::kernels {
namespace {

void relu_f32_scalar(const float* x, float* y, int64_t n) {
  // `x < 0 ? 0 : x` keeps NaN and -0.0 exactly like torch.relu (and like max_ps(0, x) in the SIMD variants).
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void add_f32_scalar(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace

void relu_f32(std::uintptr_t x_ptr, std::uintptr_t y_ptr, int64_t n) {
  LG_CHECK(n >= 0, n, "must be >= 0, got ", n);
  LG_CHECK(n <= INT64_MAX / int64_t(sizeof(float)), n, "is too large: ", n);
  LG_CHECK_BUFFER(x_ptr, float, n);
  LG_CHECK_BUFFER(y_ptr, float, n);
  LG_CHECK(!partially_overlaps(x_ptr, y_ptr, n * int64_t(sizeof(float))), y_ptr,
           "partially overlaps x_ptr (only exact in-place aliasing is allowed)");
  const auto* x = reinterpret_cast<const float*>(x_ptr);
  auto* y = reinterpret_cast<float*>(y_ptr);
  const auto kernel = pick_kernel<void(const float*, float*, int64_t)>(
      active_isa(), relu_f32_scalar, LG_IF_AVX2(relu_f32_avx2), LG_IF_AVX512(relu_f32_avx512));
  parallel_for_work(0, n, work_ns_for_bytes(8.0 * double(n)),
                    [&](int64_t b, int64_t e) { kernel(x + b, y + b, e - b); });
}

void add_f32(std::uintptr_t a_ptr, std::uintptr_t b_ptr, std::uintptr_t y_ptr, int64_t n) {
  LG_CHECK(n >= 0, n, "must be >= 0, got ", n);
  LG_CHECK(n <= INT64_MAX / int64_t(sizeof(float)), n, "is too large: ", n);
  LG_CHECK_BUFFER(a_ptr, float, n);
  LG_CHECK_BUFFER(b_ptr, float, n);
  LG_CHECK_BUFFER(y_ptr, float, n);
  const int64_t bytes = n * int64_t(sizeof(float));
  LG_CHECK(!partially_overlaps(a_ptr, y_ptr, bytes), y_ptr,
           "partially overlaps a_ptr (only exact in-place aliasing is allowed)");
  LG_CHECK(!partially_overlaps(b_ptr, y_ptr, bytes), y_ptr,
           "partially overlaps b_ptr (only exact in-place aliasing is allowed)");
  const auto* a = reinterpret_cast<const float*>(a_ptr);
  const auto* bb = reinterpret_cast<const float*>(b_ptr);
  auto* y = reinterpret_cast<float*>(y_ptr);
  const auto kernel = pick_kernel<void(const float*, const float*, float*, int64_t)>(
      active_isa(), add_f32_scalar, LG_IF_AVX2(add_f32_avx2), LG_IF_AVX512(add_f32_avx512));
  parallel_for_work(0, n, work_ns_for_bytes(12.0 * double(n)),
                    [&](int64_t b, int64_t e) { kernel(a + b, bb + b, y + b, e - b); });
}

}  // namespace lg::kernels
