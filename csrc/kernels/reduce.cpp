// argmax over the middle dim of a contiguous [outer, red, inner] f32 tensor (portable; a compare-and-select loop
// that the compiler vectorises well enough for the model sizes it sees). Sum/mean/amax/amin live in the program
// TUs (reduce_rows_* in program_vec.h).
#include <cstdint>
#include <string>
#include <vector>

#include <algorithm>

#include "common/check.h"
#include "common/threadpool.h"
#include "common/view.h"
#include "kernels/program.h"

namespace lg::kernels {

// torch.argmax: the first maximum; NaN counts as the maximum (the first NaN wins).
void argmax_f32(std::uintptr_t x_ptr, std::uintptr_t out_ptr, int64_t outer, int64_t red, int64_t inner) {
  LG_CHECK(outer >= 0, outer, "must be >= 0, got ", outer);
  LG_CHECK(red >= 1, red, "must be >= 1 (argmax of an empty dim), got ", red);
  LG_CHECK(inner >= 0, inner, "must be >= 0, got ", inner);
  LG_CHECK(inner == 0 || outer == 0 || red <= INT64_MAX / 4 / inner / outer, red, "is too large");
  if (outer == 0 || inner == 0) return;
  LG_CHECK_BUFFER(x_ptr, float, 1);
  LG_CHECK_BUFFER(out_ptr, int64_t, 1);
  const auto* x = reinterpret_cast<const float*>(x_ptr);
  auto* out = reinterpret_cast<int64_t*>(out_ptr);
  // compare-and-select per element: ~4x a streaming read's cost
  const double work = work_ns_for_bytes(16.0 * double(outer) * double(red) * double(inner));
  parallel_for_work(0, outer, work, [&](int64_t o0, int64_t o1) {
    std::vector<float> best(inner);
    for (int64_t o = o0; o < o1; ++o) {
      const float* base = x + o * red * inner;
      int64_t* idx = out + o * inner;
      for (int64_t i = 0; i < inner; ++i) {
        best[i] = base[i];
        idx[i] = 0;
      }
      for (int64_t r = 1; r < red; ++r) {
        const float* row = base + r * inner;
        for (int64_t i = 0; i < inner; ++i) {
          const float v = row[i], b = best[i];
          if (b == b && (v > b || v != v)) {
            best[i] = v;
            idx[i] = r;
          }
        }
      }
    }
  });
}

}  // namespace lg::kernels
