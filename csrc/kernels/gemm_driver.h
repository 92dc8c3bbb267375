// The one blocked GEMM driver behind every precision (fp32, bf16, int8, weight-only int8/int4; next sparse): packed
// B panels, cache blocking, A packing per block, the micro-kernel over register tiles, the epilogue on the last K
// slice, threading over a grid of C rectangles behind the oversubscription guard. A precision plugs in as a Kernel
// type (see F32Kernel in gemm.cpp, S8Kernel in gemm_int8.cpp, WoKernel in gemm_wo.cpp):
//
//   struct Kernel {
//     PanelView b;                 // the packed B: panels of kPanel columns, `rows` 32-bit words per column
//     int max_mr;                  // the micro-kernel's largest register tile (rows)
//     int64_t kc_max() const;      // k rows per K slice (b.rows: the whole K at once, no partial sums in C)
//     int64_t mc_max(int64_t kc) const;                       // rows per block (the packed A block stays in L2)
//     bool direct(int64_t m0, int64_t m1, int64_t j0, int64_t j1);  // a block done without packing (K = 0, GEMV)
//     const uint32_t* pack(int64_t ic, int64_t mc, int64_t pc, int64_t kc, int tile_mr);  // tile t at t * a_words(kc)
//     int64_t a_words(int64_t kc) const;  // packed A words per row for a slice of kc B words (kc, or kc x k per word)
//     void tile(const uint32_t* ap, const uint32_t* bp, int w, int64_t i, int64_t n0, int mr, int nr, int64_t kc,
//               bool first, bool last,                    // C tile (+)= A tile x B slice; epilogue when last
//               const char* pf, int64_t pf_bytes);        // this tile's share of the next panel slice (prefetch)
//   };
//
// Every pack format stores 32-bit words: fp32 values, bf16 k-pairs, int8 k-groups of 4. So one layout serves all:
// panel j at data + j * rows * kPanel words, k row r of a panel of width w at + r * w.
// Portable code only (included by gemm.cpp and gemm_int8.cpp, never by the ISA units).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "kernels/gemm.h"

namespace lg::gemm::detail {

// owned = false: the words belong to someone else (packed panels read in place from a mapped artifact file).
struct AlignedFree {
  bool owned = true;
  void operator()(void* p) const {
    if (owned) std::free(p);
  }
};
using AlignedPtr = std::unique_ptr<uint32_t[], AlignedFree>;

// Buffers of 2 MiB or more (packed weights, large scratch) are 2 MiB aligned and asked for transparent huge pages
// (THP is usually in "madvise" mode): a GEMV streams its weight at L3/DRAM speed only when the TLB keeps up,
// which 4 KiB pages (one miss per 4 KiB of a 16 MiB weight) do not (measured: ~60 GB/s with 4 KiB pages, ~100+
// with huge pages on Zen 4). The advice is taken before the first touch, so packing faults the pages in huge.
inline AlignedPtr aligned_words(int64_t n, bool huge_pages = true) {
  constexpr size_t kHuge = size_t(2) << 20;
  size_t bytes = ((static_cast<size_t>(std::max<int64_t>(n, 1)) * 4 + 63) / 64) * 64;
  const bool huge = huge_pages && bytes >= kHuge;
  if (huge) bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(huge ? kHuge : 64, bytes);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return AlignedPtr(static_cast<uint32_t*>(p));
}

// The last panel is kPanel / 2 wide when the remainder fits (fewer padded columns in narrow outputs).
inline int last_panel_width(int64_t N) {
  const int64_t rem = N % kPanel;
  return (rem != 0 && rem <= kPanel / 2) ? kPanel / 2 : kPanel;
}

// Packed B as the driver reads it.
struct PanelView {
  const uint32_t* data = nullptr;
  int64_t N = 0;     // columns (the last panel is zero padded past N)
  int64_t rows = 0;  // 32-bit words per column of a panel (K, k-pairs or k-groups)
  int64_t n_panels = 0;
  int last_width = kPanel;

  int width(int64_t j) const { return j == n_panels - 1 ? last_width : kPanel; }
  const uint32_t* panel(int64_t j) const { return data + j * rows * kPanel; }
};

// Packed B that owns its words: the common part of PackedB (fp32/bf16) and PackedS8.
struct Panels {
  int64_t K = 0, N = 0, rows = 0, n_panels = 0;
  int last_width = kPanel;
  AlignedPtr data;

  void allocate(int64_t k, int64_t n, int64_t rows_per_column, bool huge_pages) {
    K = k;
    N = n;
    rows = rows_per_column;
    n_panels = (n + kPanel - 1) / kPanel;
    last_width = last_panel_width(n);
    data = aligned_words(n_panels * rows * kPanel, huge_pages);
  }
  int width(int64_t j) const { return j == n_panels - 1 ? last_width : kPanel; }
  uint32_t* panel(int64_t j) { return data.get() + j * rows * kPanel; }
  PanelView view() const { return PanelView{data.get(), N, rows, n_panels, last_width}; }
  int64_t nbytes() const { return n_panels == 0 ? 0 : ((n_panels - 1) * kPanel + last_width) * rows * 4; }
};

// A growable, 64-byte aligned word buffer (one per thread for packed A blocks).
struct Scratch {
  AlignedPtr buf;
  int64_t words = 0;
  uint32_t* get(int64_t n) {
    if (n > words) {
      buf = aligned_words(n);
      words = n;
    }
    return buf.get();
  }
};

inline bool has_epilogue(const Epilogue& e) { return e.bias || e.residual || e.act != Act::None; }

// The epilogue of the C tile whose first element is (i, n0).
inline TileEpi tile_epi(const Epilogue& e, int64_t i, int64_t n0) {
  return TileEpi{e.bias ? e.bias + n0 : nullptr, e.residual ? e.residual + i * e.ld_residual + n0 : nullptr,
                 e.ld_residual, e.residual_before_act ? 1 : 0, static_cast<int>(e.act)};
}

// Cache blocking of the fp32/bf16 kernels: k rows per K slice, rows per block. A B panel slice (KC x 32 floats)
// stays in L2 beside the A block; MC fills L2 with the packed A block (MC x KC floats), at most 256 rows: 256 on
// Zen 3 (512 KiB L2) and Zen 4 (1 MiB, where more rows measured no faster), 128 on a 256 KiB L2. KC is 512 on the
// AVX-512 kernels and 768 on the AVX2 ones: every K slice re-reads and re-writes the C tile and restarts the
// 6 x 16 AVX2 tile's k loop, and one slice covers the transformers' K = 768 (whole models on Zen 3, interleaved in
// one process, KC 768 vs 512: BERT-base 1.10x, GPT-2 1.09x, ViT-B 1.08x, MLP b64 and ResNet-18 1.00x; KC 1024:
// ViT 1.00x). Overridden from lepton_graph.config (LEPTON_GEMM_KC / LEPTON_GEMM_MC) through _C.gemm_set_blocking.
inline int64_t default_kc() { return active_isa() == Isa::avx512 ? 512 : 768; }
inline int64_t derived_mc(int64_t kc) {
  return std::clamp<int64_t>(cache_sizes().l2 / (std::max<int64_t>(kc, 8) * 4), 48, 256);
}
struct Blocking {
  std::atomic<int64_t> kc{default_kc()};
  std::atomic<int64_t> mc{derived_mc(default_kc())};
};
inline Blocking& blocking() {
  static Blocking b;
  return b;
}

// The blocking of rows [m0, m1): K slices of (nearly) equal length <= KC, multiples of 8 where possible (bf16 and
// int8 count k-pairs/groups, so the B panel slice of one KC stays the same size in bytes: 512 x 128 B = 64 KiB, in
// L2); row blocks of (nearly) equal height <= MC.
struct BlockPlan {
  int64_t KC = 1, MC = 1;
  bool single = false;  // one K slice and one row block: the packed A serves every panel of the call
};

template <class Kernel>
BlockPlan plan_blocks(const Kernel& kn, int64_t rows) {
  const int64_t words = kn.b.rows;
  const int64_t kc_max = std::max<int64_t>(8, kn.kc_max());
  const int64_t n_kb = (words + kc_max - 1) / kc_max;
  BlockPlan p;
  p.KC = std::min<int64_t>(words, std::min<int64_t>(kc_max, ((words + n_kb - 1) / n_kb + 7) / 8 * 8));
  // Rows up to 5/4 of MC stay one block: its tiles then stream partly from L3 (a small share of its bandwidth at
  // these sizes) where two half-height blocks would pass every B panel slice twice and, split over N, make A pack
  // per chunk (ViT-B's 197 tokens against MC 170 on Zen 3: the whole model 1.07x, interleaved in one process).
  const int64_t mc_max = std::max<int64_t>(1, kn.mc_max(p.KC));
  const int64_t n_mb = rows <= mc_max + mc_max / 4 ? 1 : (rows + mc_max - 1) / mc_max;
  p.MC = (rows + n_mb - 1) / n_mb;
  p.single = p.KC >= words && p.MC >= rows;
  return p;
}

// Tiles of equal height <= max_mr within a block (the last one smaller), so no thin leftover tile runs with too
// few accumulators.
template <class Kernel>
int block_tile_mr(const Kernel& kn, int64_t mc) {
  const int64_t n_tiles = (mc + kn.max_mr - 1) / kn.max_mr;
  return static_cast<int>((mc + n_tiles - 1) / n_tiles);
}

// Panels [j0, j1) of one packed A block (rows ic.. ic + mc, K slice pc.. pc + kc).
template <class Kernel>
void run_panels(Kernel& kn, const uint32_t* ap, int64_t ic, int64_t mc, int tile_mr, int64_t pc, int64_t kc,
                int64_t j0, int64_t j1) {
  const PanelView& b = kn.b;
  const bool last = pc + kc == b.rows;
  const int64_t a_kc = kn.a_words(kc);
  const int64_t n_tiles_blk = (mc + tile_mr - 1) / tile_mr;
  for (int64_t j = j0; j < j1; ++j) {
    const int w = b.width(j);
    const int64_t n0 = j * kPanel;
    const int nr = static_cast<int>(std::min<int64_t>(w, b.N - n0));
    const uint32_t* bp = b.panel(j) + pc * w;
    // The next panel's slice, shared out among this panel's tiles for prefetching (see MicroKernel in gemm.h).
    const char* next = j + 1 < j1 ? reinterpret_cast<const char*>(b.panel(j + 1) + pc * b.width(j + 1)) : nullptr;
    const int64_t next_bytes = next ? kc * b.width(j + 1) * 4 : 0;
    int64_t ti = 0;
    for (int64_t t0 = 0; t0 < mc; t0 += tile_mr, ++ti) {
      const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
      const int64_t p0 = next_bytes * ti / n_tiles_blk, p1 = next_bytes * (ti + 1) / n_tiles_blk;
      kn.tile(ap + t0 * a_kc, bp, w, ic + t0, n0, mr, nr, kc, pc == 0, last, next ? next + p0 : nullptr, p1 - p0);
    }
  }
}

// C rows [m0, m1) x panels [j0, j1) on the calling thread, with its own copy of the kernel (pack may leave
// per-block state, such as the rows' quantisation parameters, for tile).
template <class Kernel>
void run_block(Kernel kn, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
  if (m1 <= m0 || j1 <= j0 || kn.direct(m0, m1, j0, j1)) return;
  const BlockPlan p = plan_blocks(kn, m1 - m0);
  for (int64_t pc = 0; pc < kn.b.rows; pc += p.KC) {
    const int64_t kc = std::min<int64_t>(p.KC, kn.b.rows - pc);
    for (int64_t ic = m0; ic < m1; ic += p.MC) {
      const int64_t mc = std::min<int64_t>(p.MC, m1 - ic);
      const int tile_mr = block_tile_mr(kn, mc);
      run_panels(kn, kn.pack(ic, mc, pc, kc, tile_mr), ic, mc, tile_mr, pc, kc, j0, j1);
    }
  }
}

// Panels handed out at run time: a shared counter of the next unclaimed panel, claimed in chunks of a share of what
// is left (guided scheduling), so a thread that runs slower (a vCPU whose core another tenant's thread shares, a
// preempted worker) ends up with fewer panels instead of everyone waiting for its fixed half at the join.
struct PanelQueue {
  std::atomic<int64_t> next{0};
  int64_t n_panels = 0;
  int threads = 1;

  // [j0, j1) claimed, or false when none is left.
  bool claim(int64_t& j0, int64_t& j1) {
    int64_t j = next.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t left = n_panels - j;
      if (left <= 0) return false;
      const int64_t size = (left + 2 * threads - 1) / (2 * threads);
      if (next.compare_exchange_weak(j, j + size, std::memory_order_relaxed)) {
        j0 = j;
        j1 = j + size;
        return true;
      }
    }
  }
};

// Every row of the GEMM over the panels claimed from q, for a GEMM whose A is one block (plan_blocks(kn, M).single:
// the transformers' layers, K <= KC and M <= 5/4 MC): A is packed once per thread and serves every chunk. (Chunks
// that re-packed A for several K slices or row blocks measured slower than the fixed split: run_gemm keeps that.)
template <class Kernel>
void run_claimed(Kernel kn, int64_t M, PanelQueue& q) {
  int64_t j0, j1;
  if (!q.claim(j0, j1)) return;
  if (kn.direct(0, M, j0, j1)) {
    while (q.claim(j0, j1)) kn.direct(0, M, j0, j1);
    return;
  }
  const int tile_mr = block_tile_mr(kn, M);
  const int64_t kc = kn.b.rows;
  const uint32_t* ap = kn.pack(0, M, 0, kc, tile_mr);
  do run_panels(kn, ap, 0, M, tile_mr, 0, kc, j0, j1);
  while (q.claim(j0, j1));
}

// Off (LEPTON_GEMM_DYNAMIC_PANELS=0, through _C.gemm_set_dynamic_panels): the fixed grid split for the N split too,
// every thread its fixed share of panels (for A/B measurements).
inline std::atomic<bool>& dynamic_panels() {
  static std::atomic<bool> on{true};
  return on;
}

// The thread grid tm x tn over (rows, panels) for T threads: the smallest largest share. Ties go to splitting the
// dimension whose operand is cheaper to handle twice: splitting N makes every thread pack all of A, splitting M
// makes every thread stream all of B; so N while B is the bigger operand (N >= M: transformer layers), else M
// (convolutions: thousands of pixels, tens of channels, and a costly window gather in packing A). Fewer than 8
// rows are never split (each split re-reads B).
inline void choose_grid(int64_t M, int64_t N, int64_t n_panels, int T, int& tm, int& tn) {
  const int64_t m_units = M < 8 ? 1 : M;
  const bool ties_to_n = N >= M;
  tm = tn = 1;
  double best = 1e300;
  for (int n = 1; n <= T; ++n) {
    const int m = T / n;
    if (n > n_panels || m > m_units) continue;
    const double cost = double((n_panels + n - 1) / n) * double((m_units + m - 1) / m);
    if (cost < best * 0.999 || (cost <= best * 1.001 && (ties_to_n ? n > tn : m > tm))) {
      best = cost;
      tm = m;
      tn = n;
    }
  }
}

// Work below this single-thread time runs on the calling thread (a fork/join costs about as much).
inline constexpr double kMinParallelGemmS = 2.6e-6;

// The whole GEMM (M rows): single_thread_s is its estimated time on one thread (compute or streaming B, whichever
// is larger); threads=false keeps it on the calling thread (callers that parallelise over batches themselves).
template <class Kernel>
void run_gemm(Kernel& kn, int64_t M, double single_thread_s, bool threads) {
  const int64_t np = kn.b.n_panels;
  if (M == 0 || np == 0) return;
  const int T = threads && single_thread_s >= kMinParallelGemmS ? guarded_threads(single_thread_s) : 1;
  int tm = 1, tn = 1;
  if (T > 1) choose_grid(M, kn.b.N, np, T, tm, tn);
  if (tm == 1 && tn > 1 && dynamic_panels().load(std::memory_order_relaxed) && plan_blocks(kn, M).single) {
    // The N split with A packed once per thread: panels can go to whichever thread is free.
    PanelQueue q;
    q.n_panels = np;
    q.threads = tn;
    guarded_parallel_for(int64_t(tn), 1, tn, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) run_claimed(kn, M, q);
    });
    return;
  }
  guarded_parallel_for(int64_t(tm) * tn, 1, tm * tn, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t ti = t / tn, tj = t % tn;
      run_block(kn, M * ti / tm, M * (ti + 1) / tm, np * tj / tn, np * (tj + 1) / tn);
    }
  });
}

}  // namespace lg::gemm::detail
