// AVX2 channels-last pooling kernels (compiled with -mavx2 -mfma; entered only via pool.cpp): pool_vec.h
// over 8-lane vectors.
#include "kernels/conv.h"

#define LG_VEC_NS vec_avx2
#define LG_VEC_ISA 1
#include "kernels/pool_vec.h"

namespace lg::conv {

void pool_max_pixel_f32_avx2(const float* const* in, int64_t n_in, int64_t C, float* out) {
  kernels::vec_avx2::pool_max_pixel(in, n_in, C, out);
}

void pool_avg_pixel_f32_avx2(const float* const* in, int64_t n_in, int64_t C, float scale, float* out) {
  kernels::vec_avx2::pool_avg_pixel(in, n_in, C, scale, out);
}

}  // namespace lg::conv
