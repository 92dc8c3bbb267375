// Intra-op parallelism for kernels: parallel_for(begin, end, grain, fn) splits [begin, end) into at most
// get_num_threads() contiguous chunks of at least `grain` items and calls fn(chunk_begin, chunk_end) on each.
// parallel_for_work(begin, end, work_ns, fn) decides from the work's estimated single-thread time instead (see
// work_ns_for_bytes): small work stays on the calling thread, big work splits evenly, and while the machine is
// oversubscribed (the measured fork/join overhead is large) only work that pays for that overhead is split.
// OpenMP when CMake found it (LG_USE_OPENMP), std::thread otherwise. Work below one grain runs inline, so small
// tensors pay no threading cost. Kernels call this from code running without the GIL.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
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

// -- work-based splitting ------------------------------------------------------------------------------------------

// Single-thread work below which another thread is not worth waking: a fork/join costs a few microseconds on a
// quiet machine (OpenMP team wake-up + join), and work split this fine gains less than that (measured: relu/add/
// layer norm at 2 threads vs 1, bench/kernels.py --only eltwise).
inline constexpr double kMinNsPerThread = 16000.0;

// Estimated single-thread time of memory-bound work that moves `bytes` (read + written); ~20 GB/s per thread
// (DRAM-bound streams; cache-resident work is faster, which only makes the estimate conservative).
inline double work_ns_for_bytes(double bytes) { return bytes * 0.05; }

inline int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a parallel_for_work call costs the calling thread beyond its own share (moving average): waking the workers
// and waiting for them at the join. Microseconds when quiet; on an oversubscribed machine (other processes on
// every core) a worker waits for a time slice and so does the caller: hundreds of microseconds or more.
struct ParallelOverhead {
  std::atomic<int64_t> ema_ns{0};
  std::atomic<int64_t> next_probe_ns{0};  // steady time after which an unprofitable-looking split may probe again
};

inline ParallelOverhead& parallel_overhead() {
  static ParallelOverhead o;
  return o;
}

// The oversubscription guard can be switched off (benchmarks comparing with and without it).
inline std::atomic<bool>& parallel_guard_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

template <class Fn>
void parallel_for_work(int64_t begin, int64_t end, double work_ns, const Fn& fn) {
  const int64_t total = end - begin;
  if (total <= 0) return;
  int nt = get_num_threads();
  if (work_ns < kMinNsPerThread * nt) nt = static_cast<int>(std::max(1.0, work_ns / kMinNsPerThread));
  nt = static_cast<int>(std::min<int64_t>(nt, total));
  ParallelOverhead& po = parallel_overhead();
  if (nt > 1) {
    const int64_t ov = po.ema_ns.load(std::memory_order_relaxed);
    // Oversubscribed: split only when the measured overhead is repaid; one call in ~20x the overhead probes anyway
    // (at most ~5% of the time), to notice when the machine is quiet again.
    const bool guard = parallel_guard_enabled().load(std::memory_order_relaxed);
    if (guard && ov > 50000 && work_ns / nt + double(ov) >= work_ns) {
      const int64_t now = steady_now_ns();
      int64_t next = po.next_probe_ns.load(std::memory_order_relaxed);
      if (now < next || !po.next_probe_ns.compare_exchange_strong(next, now + 20 * ov, std::memory_order_relaxed))
        nt = 1;
    }
  }
  if (nt <= 1) {
    fn(begin, end);
    return;
  }
  const int64_t grain = (total + nt - 1) / nt;  // equal chunks, one per thread
  const int64_t fork = steady_now_ns();
  int64_t own = 0;
  parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
    if (b != begin) {
      fn(b, e);
      return;
    }
    const int64_t t0 = steady_now_ns();  // the chunk the calling thread runs
    fn(b, e);
    own = steady_now_ns() - t0;
  });
  const int64_t ema = po.ema_ns.load(std::memory_order_relaxed);
  // one sample moves the average at most to ~4x + 100 us: a single preempted fork (a whole time slice, ms) must not
  // keep every kernel single-threaded for long; sustained oversubscription still lifts it within ~20 calls
  const int64_t overhead = std::min<int64_t>(std::max<int64_t>(0, steady_now_ns() - fork - own), 4 * ema + 100000);
  // quick to believe the machine is quiet again (halving), slow to believe it is oversubscribed (an eighth)
  po.ema_ns.store(overhead < ema ? (ema + overhead) / 2 : ema + (overhead - ema) / 8, std::memory_order_relaxed);
}

}  // namespace lg
