// AVX-512 channels-last pooling kernels (compiled with the AVX-512 flag set; entered only via pool.cpp): pool_vec.h
// over 16-lane vectors.
#include "kernels/conv.h"

#define LG_VEC_NS vec_avx512
#define LG_VEC_ISA 2
#include "kernels/pool_vec.h"

namespace lg::conv {

void pool_max_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float* out) {
  kernels::vec_avx512::pool_max_pixel(in, n_in, C, out);
}

void pool_avg_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float scale, float* out) {
  kernels::vec_avx512::pool_avg_pixel(in, n_in, C, scale, out);
}

}  // namespace lg::conv
