// The program interpreter and row reductions compiled for the avx2 variant (see program_vec.h).
#define LG_VEC_NS vec_avx2
#define LG_VEC_ISA 1
#include "kernels/program_vec.h"

namespace lg::kernels {

void program_tiles_avx2(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch) {
  vec_avx2::run_tiles(plan, t0, t1, scratch);
}

void reduce_rows_avx2(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red,
                        int64_t inner) {
  vec_avx2::reduce_rows(fn, x, out, o0, o1, red, inner);
}

}  // namespace lg::kernels
