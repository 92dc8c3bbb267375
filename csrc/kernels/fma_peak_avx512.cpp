// The AVX-512 FMA loop of the peak probe (compiled with the AVX-512 flags): fma_peak_vec.h over 16-lane vectors.
#define LG_VEC_NS vec_avx512
#define LG_VEC_ISA 2
#include "kernels/fma_peak_vec.h"

namespace lg::probe {

float fma_loop_avx512(int64_t iters) { return kernels::vec_avx512::fma_loop(iters); }

}  // namespace lg::probe
