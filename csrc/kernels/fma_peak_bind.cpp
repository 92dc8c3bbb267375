// Python binding of the FMA peak probe (fma_peak.h): lepton_graph._C.fma_peak.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "common/bindings.h"
#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "kernels/fma_peak.h"

namespace py = pybind11;
using py::arg;

namespace {

struct Loop {
  float (*fn)(int64_t) = nullptr;
  int64_t flops_per_iter = 0;
  const char* isa = "scalar";
};

Loop loop_for(lg::Isa isa) {
#if LG_HAVE_AVX512_KERNELS
  if (isa == lg::Isa::avx512) return {lg::probe::fma_loop_avx512, lg::probe::kFlopsPerIterAvx512, "avx512"};
#endif
#if LG_HAVE_AVX2_KERNELS
  if (isa >= lg::Isa::avx2) return {lg::probe::fma_loop_avx2, lg::probe::kFlopsPerIterAvx2, "avx2"};
#endif
  (void)isa;
  return {};
}

// Best GFLOP/s of `repeats` timed runs of `iters` loop iterations on each of `threads` threads at once.
double time_loop(const Loop& lp, int64_t iters, int threads, int repeats) {
  double best = 0.0;
  std::atomic<float> sink{0.0f};
  for (int r = 0; r < repeats; ++r) {
    const int64_t t0 = lg::steady_now_ns();
    lg::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) sink.store(sink.load() + lp.fn(iters));
    });
    const double s = double(lg::steady_now_ns() - t0) * 1e-9;
    best = std::max(best, double(lp.flops_per_iter) * double(iters) * threads / s * 1e-9);
  }
  return best;
}

}  // namespace

LG_BIND(fma_peak) {
  m.def(
      "fma_peak",
      [](double seconds, int threads) {
        LG_CHECK(seconds > 0.0 && seconds <= 10.0, seconds, "must be in (0, 10], got ", seconds);
        LG_CHECK(threads >= 0, threads, "must be >= 0 (0: get_num_threads()), got ", threads);
        const int saved = lg::get_num_threads();
        const int T = threads == 0 ? saved : threads;
        const Loop lp = loop_for(lg::active_isa());
        py::dict d;
        d["isa"] = std::string(lp.isa);
        d["threads"] = T;
        if (!lp.fn) {
          d["gflops"] = 0.0;
          d["gflops_per_thread"] = 0.0;
          return d;
        }
        double one = 0.0, all = 0.0;
        {
          py::gil_scoped_release nogil;
          // iterations for ~seconds / 6 per run at the measured single-thread rate (3 runs each for 1 and T threads)
          const double probe = time_loop(lp, 100000, 1, 2);
          const auto iters = std::max<int64_t>(
              100000, int64_t(probe * 1e9 * (seconds / 6.0) / double(lp.flops_per_iter)));
          one = time_loop(lp, iters, 1, 3);
          lg::set_num_threads(std::max(T, 1));
          all = T > 1 ? time_loop(lp, iters, T, 3) : one;
          lg::set_num_threads(saved);
        }
        d["gflops"] = all;
        d["gflops_per_thread"] = one;
        return d;
      },
      arg("seconds") = 0.5, arg("threads") = 0,
      "The fp32 FMA peak of the active kernel ISA (avx2: 8 lanes, avx512: 16), measured: independent FMAs timed on "
      "one thread and on `threads` threads at once (0: the kernels' thread count), about `seconds` in all. Returns "
      "{isa, threads, gflops (all threads), gflops_per_thread (one thread)}; 0 where the ISA has no FMA loop.");
}
