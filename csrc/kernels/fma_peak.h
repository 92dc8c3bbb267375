// The FMA peak of this CPU as our kernels' ISA path can reach it: a loop of independent fp32 FMAs (enough
// accumulators to cover the FMA latency on both ports) timed on one thread and on every thread at once. Kernel
// targets are stated as a fraction of this figure (issue 22: "state the peak you derive from the clock and the FMA
// ports"); the clock follows from it: GF/s / (ports x lanes x 2 flops) per core.
// Declarations only (included by the ISA units too).
#pragma once
#include <cstdint>

namespace lg::probe {

// Floating-point operations per loop iteration of the ISA units' FMA loops (accumulators x lanes x 2).
constexpr int64_t kFmaAccumulators = 12;
constexpr int64_t kFlopsPerIterAvx2 = kFmaAccumulators * 8 * 2;
constexpr int64_t kFlopsPerIterAvx512 = kFmaAccumulators * 16 * 2;

// Runs `iters` iterations; returns a value that depends on every FMA (so none is optimised away).
float fma_loop_avx2(int64_t iters);
float fma_loop_avx512(int64_t iters);

}  // namespace lg::probe
