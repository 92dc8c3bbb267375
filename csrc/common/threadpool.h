// Intra-op parallelism for kernels: parallel_for(begin, end, grain, fn) splits [begin, end) into at most
// get_num_threads() contiguous chunks of at least `grain` items and calls fn(chunk_begin, chunk_end) on each.
// OpenMP when CMake found it (LG_USE_OPENMP), std::thread otherwise. Work below one grain runs inline, so small
// tensors pay no threading cost. Kernels call this from code running without the GIL.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "common/check.h"

#ifndef LG_USE_OPENMP
#define LG_USE_OPENMP 0
#endif
#if LG_USE_OPENMP
#include <omp.h>
#endif

namespace lg {

inline int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> n{hardware_threads()};
  return n;
}

inline int get_num_threads() { return num_threads_setting().load(std::memory_order_relaxed); }

inline void set_num_threads(int n) {
  LG_CHECK(n >= 1, n, "must be >= 1, got ", n);
  num_threads_setting().store(n, std::memory_order_relaxed);
}

inline constexpr bool kUsesOpenMP = LG_USE_OPENMP;

template <class Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Fn& fn) {
  const int64_t total = end - begin;
  if (total <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (total + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(get_num_threads(), max_chunks));
  if (nt <= 1) {
    fn(begin, end);
    return;
  }
  // Equal contiguous chunks, one per thread: elementwise and row-wise kernels are uniform in cost.
  const int64_t chunk = (total + nt - 1) / nt;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run_chunk = [&](int64_t t) {
    const int64_t b = begin + t * chunk, e = std::min(end, b + chunk);
    if (b >= e) return;
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
#if LG_USE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static, 1)
  for (int t = 0; t < nt; ++t) run_chunk(t);
#else
  std::vector<std::thread> workers;
  workers.reserve(nt - 1);
  for (int t = 1; t < nt; ++t) workers.emplace_back(run_chunk, t);
  run_chunk(0);
  for (auto& w : workers) w.join();
#endif
  if (error) std::rethrow_exception(error);
}

}  // namespace lg
