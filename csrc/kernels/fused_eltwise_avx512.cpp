// The program interpreter and row reductions compiled for the avx512 variant (see program_vec.h).
#define LG_VEC_NS vec_avx512
#define LG_VEC_ISA 2
#include "kernels/program_vec.h"

namespace lg::kernels {

void program_tiles_avx512(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch) {
  vec_avx512::run_tiles(plan, t0, t1, scratch);
}

void reduce_rows_avx512(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red,
                        int64_t inner) {
  vec_avx512::reduce_rows(fn, x, out, o0, o1, red, inner);
}

}  // namespace lg::kernels
