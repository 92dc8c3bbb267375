// Elementwise f32 kernels on contiguous buffers. The entry points (relu_f32, add_f32) check their arguments,
// split the work with parallel_for and dispatch each chunk to the best ISA variant.
//
// The *_avx2 / *_avx512 variants live in their own translation units (eltwise_avx2.cpp, eltwise_avx512.cpp)
// compiled with ISA flags; they take plain pointers and a count, do no checks and must only be called after
// active_isa() allowed them. This header is the only one those files include: it declares, never defines, so no
// inline function can be compiled with AVX-512 flags and then shared with the portable code.
#pragma once
#include <cstdint>

namespace lg::kernels {

// y[i] = max(x[i], 0), NaN and -0.0 passed through like torch.relu. x == y (in place) is allowed.
void relu_f32(std::uintptr_t x_ptr, std::uintptr_t y_ptr, int64_t n);
// y[i] = a[i] + b[i]. y may be exactly a or b (in place).
void add_f32(std::uintptr_t a_ptr, std::uintptr_t b_ptr, std::uintptr_t y_ptr, int64_t n);

void relu_f32_avx2(const float* x, float* y, int64_t n);
void add_f32_avx2(const float* a, const float* b, float* y, int64_t n);
void relu_f32_avx512(const float* x, float* y, int64_t n);
void add_f32_avx512(const float* a, const float* b, float* y, int64_t n);

}  // namespace lg::kernels
