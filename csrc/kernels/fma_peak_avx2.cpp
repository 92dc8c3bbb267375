// The AVX2 FMA loop of the peak probe (compiled with -mavx2 -mfma): fma_peak_vec.h over 8-lane vectors.
#define LG_VEC_NS vec_avx2
#define LG_VEC_ISA 1
#include "kernels/fma_peak_vec.h"

namespace lg::probe {

float fma_loop_avx2(int64_t iters) { return kernels::vec_avx2::fma_loop(iters); }

}  // namespace lg::probe
