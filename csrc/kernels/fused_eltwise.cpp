// The program interpreter and row reductions compiled for the scalar variant (see program_vec.h).
#define LG_VEC_NS vec_scalar
#define LG_VEC_ISA 0
#include "kernels/program_vec.h"

namespace lg::kernels {

void program_tiles_scalar(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch) {
  vec_scalar::run_tiles(plan, t0, t1, scratch);
}

void reduce_rows_scalar(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red,
                        int64_t inner) {
  vec_scalar::reduce_rows(fn, x, out, o0, o1, red, inner);
}

}  // namespace lg::kernels
