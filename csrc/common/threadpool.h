// Intra-op parallelism for kernels: parallel_for(begin, end, grain, fn) splits [begin, end) into at most
// get_num_threads() contiguous chunks of at least `grain` items and calls fn(chunk_begin, chunk_end) on each.
// parallel_for_work(begin, end, work_ns, fn) decides from the work's estimated single-thread time instead (see
// work_ns_for_bytes): small work stays on the calling thread, big work splits evenly, and while the machine is
// oversubscribed (the measured fork/join overhead is large) only work that pays for that overhead is split.
// guarded_threads / guarded_parallel_for are the same guard for kernels that pick their own split (GEMM, conv).
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

// -- the oversubscription guard ----------------------------------------------------------------------------------
// One guard for every parallel kernel (GEMMs, convs, attention, elementwise programs, movement): one measurement,
// one set of constants, one switch. While other processes hold the cores, a parallel call waits a time slice
// (milliseconds) for its late worker at the join, many times a small kernel's own time; the guard then keeps the
// calls that would not repay that wait on the calling thread.

// Single-thread work below which another thread is not worth waking: a fork/join costs a few microseconds on a
// quiet machine (OpenMP team wake-up + join), and work split this fine gains less than that (measured: relu/add/
// layer norm at 2 threads vs 1, bench/kernel_bench.py --only eltwise).
inline constexpr double kMinNsPerThread = 16000.0;
// Measured overhead above which the machine counts as oversubscribed and the guard starts refusing splits.
inline constexpr int64_t kGuardOversubscribedNs = 50000;
// While refusing, one call in every kGuardProbeEvery x the overhead splits anyway (at most ~5% of the time spent
// probing), to notice when the machine is quiet again.
inline constexpr int64_t kGuardProbeEvery = 20;

// Estimated single-thread time of memory-bound work that moves `bytes` (read + written); ~20 GB/s per thread
// (DRAM-bound streams; cache-resident work is faster, which only makes the estimate conservative).
inline double work_ns_for_bytes(double bytes) { return bytes * 0.05; }

inline int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a parallel call costs the calling thread beyond its own share (moving average): waking the workers and
// waiting for them at the join. Microseconds when quiet; hundreds of microseconds or more when oversubscribed.
struct ParallelOverhead {
  std::atomic<int64_t> ema_ns{0};
  std::atomic<int64_t> next_probe_ns{0};  // steady time after which an unprofitable-looking split may probe again
};

inline ParallelOverhead& parallel_overhead() {
  static ParallelOverhead o;
  return o;
}

// The guard can be switched off (benchmarks comparing with and without it): _C.set_parallel_guard.
inline std::atomic<bool>& parallel_guard_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

// The threads worth using (`want`, or 1) for work of about work_ns on one thread, given the measured overhead.
inline int guard_threads(double work_ns, int want) {
  if (want <= 1) return 1;
  ParallelOverhead& po = parallel_overhead();
  const int64_t ov = po.ema_ns.load(std::memory_order_relaxed);
  if (!parallel_guard_enabled().load(std::memory_order_relaxed) || ov <= kGuardOversubscribedNs ||
      work_ns / want + double(ov) < work_ns)
    return want;
  const int64_t now = steady_now_ns();
  int64_t next = po.next_probe_ns.load(std::memory_order_relaxed);
  if (now < next ||
      !po.next_probe_ns.compare_exchange_strong(next, now + kGuardProbeEvery * ov, std::memory_order_relaxed))
    return 1;
  return want;
}

// The kernels' form: threads worth using (get_num_threads() or 1) for a call of about single_thread_s seconds.
inline int guarded_threads(double single_thread_s) { return guard_threads(single_thread_s * 1e9, get_num_threads()); }

// Feeds one parallel call's overhead (fork-to-join wall time minus the calling thread's own share) to the average.
inline void record_parallel_overhead(int64_t overhead_ns) {
  ParallelOverhead& po = parallel_overhead();
  const int64_t ema = po.ema_ns.load(std::memory_order_relaxed);
  // one sample moves the average at most to ~4x + 100 us: a single preempted fork (a whole time slice, ms) must not
  // keep every kernel single-threaded for long; sustained oversubscription still lifts it within ~20 calls
  const int64_t sample = std::min<int64_t>(std::max<int64_t>(0, overhead_ns), 4 * ema + 100000);
  // quick to believe the machine is quiet again (halving), slow to believe it is oversubscribed (an eighth)
  po.ema_ns.store(sample < ema ? (ema + sample) / 2 : ema + (sample - ema) / 8, std::memory_order_relaxed);
}

// fn over [0, items) in chunks of at least `grain`: inline when threads <= 1, else parallel_for, feeding the
// guard's measurement with the call's overhead.
template <class Fn>
void guarded_parallel_for(int64_t items, int64_t grain, int threads, const Fn& fn) {
  if (items <= 0) return;
  if (threads <= 1 || items <= grain) {
    fn(int64_t(0), items);
    return;
  }
  const int64_t fork = steady_now_ns();
  int64_t own = 0;
  bool forked = false;
  parallel_for(0, items, grain, [&](int64_t b, int64_t e) {
    if (b != 0) {
      fn(b, e);
      return;
    }
    const int64_t t0 = steady_now_ns();  // the calling thread's chunk
    fn(b, e);
    own = steady_now_ns() - t0;
    forked = e < items;
  });
  if (forked) record_parallel_overhead(steady_now_ns() - fork - own);
}

// fn over [begin, end), split by the work's estimated single-thread time: small work stays on the calling thread
// (kMinNsPerThread per thread), big work splits into equal chunks, one per thread, behind the guard.
template <class Fn>
void parallel_for_work(int64_t begin, int64_t end, double work_ns, const Fn& fn) {
  const int64_t total = end - begin;
  if (total <= 0) return;
  int nt = get_num_threads();
  if (work_ns < kMinNsPerThread * nt) nt = static_cast<int>(std::max(1.0, work_ns / kMinNsPerThread));
  nt = guard_threads(work_ns, static_cast<int>(std::min<int64_t>(nt, total)));
  const int64_t grain = (total + nt - 1) / nt;
  guarded_parallel_for(total, grain, nt, [&](int64_t b, int64_t e) { fn(begin + b, begin + e); });
}

}  // namespace lg
