// parallel_for behind the GEMM's oversubscription guard, for the kernels that share its measurement (conv,
// Winograd, SDPA): while other processes hold the cores, a parallel call waits a time slice (milliseconds) for its
// late worker at the join, many times the kernel's own time; gemm::threads_worth_using then says 1 and the kernel
// runs on the calling thread. Portable code only (includes the thread pool): not for the ISA units.
#pragma once
#include <chrono>
#include <cstdint>

#include "common/threadpool.h"
#include "kernels/gemm.h"

namespace lg {

// The threads worth using for a kernel that takes about single_thread_s seconds on one thread.
inline int guarded_threads(double single_thread_s) {
  return get_num_threads() > 1 ? gemm::threads_worth_using(single_thread_s) : 1;
}

// fn over [0, items) in chunks of at least `grain`: inline when threads <= 1, else parallel_for, feeding the
// guard's shared measurement with the call's overhead (fork-to-join wall time minus the calling thread's share).
template <class Fn>
void guarded_parallel_for(int64_t items, int64_t grain, int threads, const Fn& fn) {
  if (items <= 0) return;
  if (threads <= 1 || items <= grain) {
    fn(int64_t(0), items);
    return;
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point fork = Clock::now();
  Clock::time_point own_start{}, own_done{};
  bool forked = false;
  parallel_for(0, items, grain, [&](int64_t b, int64_t e) {
    const bool own = b == 0;  // the calling thread's chunk
    if (own) own_start = Clock::now();
    fn(b, e);
    if (own) {
      own_done = Clock::now();
      forked = e < items;
    }
  });
  if (forked)
    gemm::record_parallel_overhead(
        std::chrono::duration_cast<std::chrono::nanoseconds>((Clock::now() - fork) - (own_done - own_start)).count());
}

}  // namespace lg
