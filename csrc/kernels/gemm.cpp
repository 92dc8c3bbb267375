// fp32 / bf16 GEMM driver: packing, cache blocking, threading and ISA dispatch (portable code; see gemm.h).
//
// Blocking (per thread, on its rectangle of C): for each KC slice of K, for each MC block of rows, A is packed into
// micro-panels (MR rows interleaved); then for every B panel (kPanel columns, pre-packed) the micro-kernel runs
// over the MR-row tiles, so a B panel slice (KC x 32) stays in L1/L2 while the packed A block (MC x KC) stays in L2.
// C tiles are written on the first K slice and accumulated on later ones; the epilogue runs on the last one while
// the tile is in registers. M <= 4 takes the GEMV-like path that streams each B panel once, A read in place.
//
// Threads: one parallel_for over a tm x tn grid of C rectangles (usually tn = threads: each thread streams its own
// share of B, packing A for itself), no barriers; small calls, and calls that would wait longer for a worker than
// they save (an oversubscribed machine, measured), stay on the calling thread.
#include "kernels/gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"

namespace lg::gemm {

using detail::IsaKernels;
using detail::kPanel;
using detail::TileEpi;

namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedPtr = std::unique_ptr<uint32_t[], AlignedFree>;

// Buffers of 2 MiB or more (packed weights, large scratch) are 2 MiB aligned and asked for transparent huge pages
// (THP is usually in "madvise" mode): a GEMV streams its weight at L3/DRAM speed only when the TLB keeps up,
// which 4 KiB pages (one miss per 4 KiB of a 16 MiB weight) do not (measured: ~60 GB/s with 4 KiB pages, ~100+
// with huge pages on Zen 4). The advice is taken before the first touch, so packing faults the pages in huge.
AlignedPtr aligned_words(int64_t n, bool huge_pages = true) {
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

}  // namespace

struct PackedB {
  int64_t K = 0, N = 0;
  bool bf16 = false;
  int64_t rows = 0;      // rows per panel: K (f32) or ceil(K / 2) (bf16 k-pairs)
  int64_t n_panels = 0;
  int last_width = kPanel;
  AlignedPtr data;       // 32-bit words: floats, or bf16 pairs

  int width(int64_t j) const { return j == n_panels - 1 ? last_width : kPanel; }
  const uint32_t* panel(int64_t j) const { return data.get() + j * rows * kPanel; }
};

int64_t packed_k(const PackedB& p) { return p.K; }
int64_t packed_n(const PackedB& p) { return p.N; }
bool packed_is_bf16(const PackedB& p) { return p.bf16; }
int64_t packed_nbytes(const PackedB& p) {
  return p.n_panels == 0 ? 0 : ((p.n_panels - 1) * kPanel + p.last_width) * p.rows * 4;
}

namespace {

// ------------------------------------------------------------------------------------------------ scalar math

float act_scalar(float v, int act) {
  switch (static_cast<Act>(act)) {
    case Act::None: return v;
    case Act::Relu: return v < 0.0f ? 0.0f : v;
    // 1 + erf(z) = erfc(-z) and 1 + tanh(u) = 2 / (1 + exp(-2u)): no cancellation for negative v.
    case Act::GeluErf: return 0.5f * v * std::erfc(-v * 0.70710678118654752f);
    case Act::GeluTanh: {
      const float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return v / (1.0f + std::exp(-2.0f * u));
    }
    case Act::Silu: return v / (1.0f + std::exp(-v));
    case Act::Tanh: return std::tanh(v);
    case Act::Sigmoid: return 1.0f / (1.0f + std::exp(-v));
  }
  return v;
}

void epilogue_scalar(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  for (int i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    const float* res = ep->residual ? ep->residual + i * ep->ld_residual : nullptr;
    for (int64_t j = 0; j < n; ++j) {
      float v = row[j];
      if (ep->bias) v += ep->bias[j];
      if (res && ep->residual_before_act) v += res[j];
      v = act_scalar(v, ep->act);
      if (res && !ep->residual_before_act) v += res[j];
      row[j] = v;
    }
  }
}

template <int MR>
void micro_scalar_t(int64_t kc, const float* ap, const float* bp, int64_t width, float* c, int64_t ldc, int nr,
                    bool accumulate, const TileEpi* ep) {
  float acc[MR][kPanel] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = bp + k * width;
    for (int i = 0; i < MR; ++i) {
      const float a = ap[k * MR + i];
      for (int64_t j = 0; j < width; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    if (accumulate)
      for (int j = 0; j < nr; ++j) acc[i][j] += row[j];
    std::memcpy(row, acc[i], sizeof(float) * nr);
  }
  if (ep) epilogue_scalar(c, ldc, MR, nr, ep);
}

void micro_scalar(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc, int mr, int nr,
                  bool accumulate, const TileEpi* ep) {
  const auto* a = static_cast<const float*>(ap);
  const auto* b = static_cast<const float*>(bp);
  switch (mr) {
    case 1: return micro_scalar_t<1>(kc, a, b, width, c, ldc, nr, accumulate, ep);
    case 2: return micro_scalar_t<2>(kc, a, b, width, c, ldc, nr, accumulate, ep);
    case 3: return micro_scalar_t<3>(kc, a, b, width, c, ldc, nr, accumulate, ep);
    default: return micro_scalar_t<4>(kc, a, b, width, c, ldc, nr, accumulate, ep);
  }
}

// bf16 emulation: the same rounded operands as vdpbf16ps, products summed in fp32.
inline float bf16_lo(uint32_t pair) { return [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }(pair << 16); }
inline float bf16_hi(uint32_t pair) {
  return [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }(pair & 0xffff0000u);
}

void micro_bf16_scalar(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc, int mr,
                       int nr, bool accumulate, const TileEpi* ep) {
  const auto* a = static_cast<const uint32_t*>(ap);
  const auto* b = static_cast<const uint32_t*>(bp);
  for (int i = 0; i < mr; ++i) {
    float acc[kPanel] = {};
    for (int64_t k = 0; k < kc; ++k) {
      const uint32_t av = a[k * mr + i];
      const float a0 = bf16_lo(av), a1 = bf16_hi(av);
      const uint32_t* brow = b + k * width;
      for (int64_t j = 0; j < width; ++j) acc[j] += a0 * bf16_lo(brow[j]) + a1 * bf16_hi(brow[j]);
    }
    float* row = c + i * ldc;
    for (int j = 0; j < nr; ++j) row[j] = accumulate ? row[j] + acc[j] : acc[j];
  }
  if (ep) epilogue_scalar(c, ldc, mr, nr, ep);
}

IsaKernels scalar_kernels() { return IsaKernels{4, micro_scalar, nullptr, epilogue_scalar, nullptr}; }

IsaKernels isa_kernels() {
  const Isa isa = active_isa();
#if LG_HAVE_AVX512_KERNELS
  if (isa == Isa::avx512) return detail::kernels_avx512();
#endif
#if LG_HAVE_AVX2_KERNELS
  if (isa >= Isa::avx2) return detail::kernels_avx2();
#endif
  (void)isa;
  return scalar_kernels();
}

void pack_a_bf16(const float* a, int64_t lda, int64_t K, int64_t m0, int64_t mc, int64_t kp0, int64_t kc2,
                 int max_mr, uint32_t* dst);

detail::IsaKernelsBf16 bf16_kernels() {
#if LG_HAVE_AVX512_KERNELS
  if (active_isa() == Isa::avx512 && cpu_features().avx512_bf16) return detail::kernels_bf16_avx512();
#endif
  return detail::IsaKernelsBf16{4, micro_bf16_scalar, pack_a_bf16};
}

uint32_t f32_to_bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;  // quiet NaN
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// ------------------------------------------------------------------------------------------------ packing

int last_panel_width(int64_t N) {
  const int64_t rem = N % kPanel;
  return (rem != 0 && rem <= kPanel / 2) ? kPanel / 2 : kPanel;
}

void check_b(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n) {
  LG_CHECK(K >= 0, K, "must be >= 0, got ", K);
  LG_CHECK(N >= 0, N, "must be >= 0, got ", N);
  LG_CHECK(stride_k >= 0, stride_k, "must be >= 0, got ", stride_k);
  LG_CHECK(stride_n >= 0, stride_n, "must be >= 0, got ", stride_n);
  LG_CHECK(K == 0 || N == 0 || b != nullptr, b, "is null");
  LG_CHECK(K <= (int64_t(1) << 40) / std::max<int64_t>(N + kPanel, 1), N, "K * N is too large");
}

// Packs B (f32) into `dst` as panels (the layout of PackedB); used for weights and for run-time B.
void pack_b_panels_f32(const float* b, int64_t K, int64_t N, int64_t sk, int64_t sn, float* dst) {
  const int64_t n_panels = (N + kPanel - 1) / kPanel;
  const int lw = last_panel_width(N);
  for (int64_t j = 0; j < n_panels; ++j) {
    const int w = j == n_panels - 1 ? lw : kPanel;
    const int64_t n0 = j * kPanel, nn = std::min<int64_t>(w, N - n0);
    float* p = dst + j * K * kPanel;
    if (sn == 1) {
      for (int64_t k = 0; k < K; ++k) {
        std::memcpy(p + k * w, b + k * sk + n0, sizeof(float) * nn);
        for (int64_t c = nn; c < w; ++c) p[k * w + c] = 0.0f;
      }
    } else {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = nn; c < w; ++c) p[k * w + c] = 0.0f;
      for (int64_t c = 0; c < nn; ++c) {
        const float* src = b + (n0 + c) * sn;
        for (int64_t k = 0; k < K; ++k) p[k * w + c] = src[k * sk];
      }
    }
  }
}

std::shared_ptr<PackedB> make_packed(int64_t K, int64_t N, bool bf16, bool huge_pages) {
  auto p = std::make_shared<PackedB>();
  p->K = K;
  p->N = N;
  p->bf16 = bf16;
  p->rows = bf16 ? (K + 1) / 2 : K;
  p->n_panels = (N + kPanel - 1) / kPanel;
  p->last_width = last_panel_width(N);
  p->data = aligned_words(p->n_panels * p->rows * kPanel, huge_pages);
  return p;
}

// Packs rows [m0, m0 + mc) x cols [k0, k0 + kc) of A into tiles of max_mr rows: tile t at dst + t * max_mr * kc,
// element (i, k) at [k * mr_t + i].
void pack_a_f32(const float* a, int64_t lda_m, int64_t lda_k, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
                int max_mr, float* dst) {  // the portable detail::PackAF32
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(std::min<int64_t>(max_mr, mc - t0));
    float* d = dst + t0 * kc;
    for (int i = 0; i < mr; ++i) {
      const float* src = a + (m0 + t0 + i) * lda_m + k0 * lda_k;
      if (lda_k == 1) {
        for (int64_t k = 0; k < kc; ++k) d[k * mr + i] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) d[k * mr + i] = src[k * lda_k];
      }
    }
  }
}

// bf16: kc2 k-pairs starting at pair kp0; pairs past K are zero (see detail::PackABf16).
void pack_a_bf16(const float* a, int64_t lda, int64_t K, int64_t m0, int64_t mc, int64_t kp0, int64_t kc2,
                 int max_mr, uint32_t* dst) {
  for (int64_t t0 = 0; t0 < mc; t0 += max_mr) {
    const int mr = static_cast<int>(std::min<int64_t>(max_mr, mc - t0));
    uint32_t* d = dst + t0 * kc2;
    for (int i = 0; i < mr; ++i) {
      const float* src = a + (m0 + t0 + i) * lda;
      for (int64_t kp = 0; kp < kc2; ++kp) {
        const int64_t k = 2 * (kp0 + kp);
        const uint32_t lo = f32_to_bf16_rne(src[k]);
        const uint32_t hi = k + 1 < K ? f32_to_bf16_rne(src[k + 1]) : 0u;
        d[kp * mr + i] = lo | (hi << 16);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ driver

int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  const long long x = std::atoll(v);
  return x > 0 ? x : dflt;
}

// Cache blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core); overridable for tuning.
int64_t block_kc() {
  static const int64_t v = env_int("LEPTON_GEMM_KC", 512);
  return v;
}
int64_t block_mc() {
  static const int64_t v = env_int("LEPTON_GEMM_MC", 256);
  return v;
}

// One GEMM: the packed B operand (f32 or bf16 panels), A strided, C, epilogue.
struct Problem {
  const float* a;
  int64_t lda_m, lda_k;
  const uint32_t* b;  // panels
  int64_t b_rows;     // rows per panel (K or k-pairs)
  int64_t n_panels;
  int last_width;
  bool bf16;
  float* c;
  int64_t ldc;
  int64_t M, N, K;
  const Epilogue* ep;

  int width(int64_t j) const { return j == n_panels - 1 ? last_width : kPanel; }
};

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

Scratch& tls_scratch() {
  static thread_local Scratch s;
  return s;
}

TileEpi tile_epi(const Problem& p, int64_t i, int64_t n0) {
  const Epilogue& e = *p.ep;
  return TileEpi{e.bias ? e.bias + n0 : nullptr, e.residual ? e.residual + i * e.ld_residual + n0 : nullptr,
                 e.ld_residual, e.residual_before_act ? 1 : 0, static_cast<int>(e.act)};
}

bool has_epilogue(const Epilogue& e) { return e.bias || e.residual || e.act != Act::None; }

// C rows [m0, m1) x panels [j0, j1).
void run_block(const Problem& p, const IsaKernels& ks, const detail::IsaKernelsBf16& kb, int64_t m0, int64_t m1,
               int64_t j0, int64_t j1) {
  if (m1 <= m0 || j1 <= j0) return;
  const bool epi = has_epilogue(*p.ep);
  if (p.K == 0) {
    for (int64_t i = m0; i < m1; ++i) {
      float* row = p.c + i * p.ldc + j0 * kPanel;
      std::fill(row, row + (std::min<int64_t>(j1 * kPanel, p.N) - j0 * kPanel), 0.0f);
    }
    if (epi) {
      const TileEpi te = tile_epi(p, m0, j0 * kPanel);
      ks.epilogue(p.c + m0 * p.ldc + j0 * kPanel, p.ldc, static_cast<int>(m1 - m0),
                  std::min<int64_t>(j1 * kPanel, p.N) - j0 * kPanel, &te);
    }
    return;
  }
  if (!p.bf16 && ks.small_m && m1 - m0 <= 4 && p.lda_k == 1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t n0 = j * kPanel;
      const int nr = static_cast<int>(std::min<int64_t>(p.width(j), p.N - n0));
      const TileEpi te = tile_epi(p, m0, n0);
      ks.small_m(static_cast<int>(m1 - m0), p.K, p.a + m0 * p.lda_m, p.lda_m,
                 reinterpret_cast<const float*>(p.b + j * p.b_rows * kPanel), p.width(j), p.c + m0 * p.ldc + n0,
                 p.ldc, nr, epi ? &te : nullptr);
    }
    return;
  }
  const int max_mr = p.bf16 ? kb.max_mr : ks.max_mr;
  const detail::MicroKernel micro = p.bf16 ? kb.micro : ks.micro;
  // K slices of (nearly) equal length <= KC, in rows of the panel (k or k-pairs), multiples of 8 where possible.
  // bf16: KC counts k-pairs, so a B panel slice of the same KC (512 pairs x 128 B = 64 KiB) stays in L2 and BERT's
  // K = 768 runs as one slice (no second pass over C).
  const int64_t kc_max = std::max<int64_t>(8, block_kc());
  const int64_t n_kb = (p.b_rows + kc_max - 1) / kc_max;
  const int64_t KC = std::min<int64_t>(kc_max, ((p.b_rows + n_kb - 1) / n_kb + 7) / 8 * 8);
  // Row blocks of (nearly) equal height <= MC; within a block, tiles of equal height <= max_mr (the last one
  // smaller), so no thin leftover tile runs with too few accumulators.
  const int64_t rows = m1 - m0;
  const int64_t n_mb = (rows + block_mc() - 1) / block_mc();
  const int64_t MC = (rows + n_mb - 1) / n_mb;
  uint32_t* abuf = tls_scratch().get(MC * std::min<int64_t>(KC, p.b_rows));
  for (int64_t pc = 0; pc < p.b_rows; pc += KC) {
    const int64_t kc = std::min<int64_t>(KC, p.b_rows - pc);
    const bool last = pc + kc == p.b_rows;
    for (int64_t ic = m0; ic < m1; ic += MC) {
      const int64_t mc = std::min<int64_t>(MC, m1 - ic);
      const int64_t n_tiles = (mc + max_mr - 1) / max_mr;
      const int tile_mr = static_cast<int>((mc + n_tiles - 1) / n_tiles);
      if (p.bf16)
        kb.pack_a(p.a, p.lda_m, p.K, ic, mc, pc, kc, tile_mr, abuf);
      else
        (ks.pack_a ? ks.pack_a : pack_a_f32)(p.a, p.lda_m, p.lda_k, ic, mc, pc, kc, tile_mr,
                                             reinterpret_cast<float*>(abuf));
      for (int64_t j = j0; j < j1; ++j) {
        const int w = p.width(j);
        const int64_t n0 = j * kPanel;
        const int nr = static_cast<int>(std::min<int64_t>(w, p.N - n0));
        const uint32_t* bp = p.b + j * p.b_rows * kPanel + pc * w;
        for (int64_t t0 = 0; t0 < mc; t0 += tile_mr) {
          const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
          const int64_t i = ic + t0;
          const TileEpi te = last && epi ? tile_epi(p, i, n0) : TileEpi{};
          micro(kc, abuf + t0 * kc, bp, w, p.c + i * p.ldc + n0, p.ldc, mr, nr, pc > 0,
                last && epi ? &te : nullptr);
        }
      }
    }
  }
}

// What a parallel call costs the calling thread beyond its own share of the work (moving average): waking the
// workers, and waiting for them at the join. On an idle machine, microseconds (the shares are equal); on an
// oversubscribed one (other processes on every core) a worker that sleeps, or is preempted, waits for a time slice
// and so does the caller: milliseconds (OpenMP's fork also waits for the previous team's workers to dock).
struct ThreadLatency {
  std::atomic<int64_t> ema_ns{0};
  std::atomic<int64_t> next_probe_ns{0};  // steady-clock time after which a call may go parallel again
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ThreadLatency& thread_latency() {
  static ThreadLatency t;
  return t;
}

}  // namespace

// Parallel overhead (see ThreadLatency): on a quiet machine it is microseconds and every call above the threshold
// is split; once it reaches the oversubscribed regime (>= 200 us), a call whose single-thread time would not pay
// for it stays on the calling thread. One such call goes parallel again after 50x the overhead has passed (at most
// ~2% of the time spent probing), to notice when the machine is quiet again.
int threads_worth_using(double single_thread_s) {
  const int T = get_num_threads();
  ThreadLatency& lat = thread_latency();
  const int64_t lat_ns = lat.ema_ns.load(std::memory_order_relaxed);
  if (T > 1 && lat_ns >= 200000 && single_thread_s / T + double(lat_ns) * 1e-9 >= single_thread_s) {
    const int64_t now = now_ns();
    int64_t next = lat.next_probe_ns.load(std::memory_order_relaxed);
    if (now < next || !lat.next_probe_ns.compare_exchange_strong(next, now + 50 * lat_ns, std::memory_order_relaxed))
      return 1;
  }
  return T;
}

// Quick to believe the machine is quiet again (halving), slower to believe it is oversubscribed (a quarter).
void record_parallel_overhead(int64_t overhead_ns) {
  ThreadLatency& lat = thread_latency();
  const int64_t ema = lat.ema_ns.load(std::memory_order_relaxed);
  lat.ema_ns.store(overhead_ns < ema ? (ema + overhead_ns) / 2 : ema + (overhead_ns - ema) / 4,
                   std::memory_order_relaxed);
}

namespace {

void run(const Problem& p, bool threads) {
  if (p.M == 0 || p.N == 0) return;
  const IsaKernels ks = isa_kernels();
  const detail::IsaKernelsBf16 kb = p.bf16 ? bf16_kernels() : detail::IsaKernelsBf16{1, nullptr, nullptr};
  const double flops = 2.0 * double(p.M) * double(p.N) * double(std::max<int64_t>(p.K, 1));
  int T = threads ? get_num_threads() : 1;
  if (flops < 262144.0) T = 1;
  if (T > 1) {
    const double b_bytes = double(p.K) * double(p.N) * (p.bf16 ? 2.0 : 4.0);
    T = std::min(T, threads_worth_using(std::max(flops / 1.0e11, b_bytes / 4.0e10)));
  }
  // Grid tm x tn over (rows, panels): minimise the largest share; ties go to splitting N (A is cheap to re-pack,
  // B is the big operand); fewer than 8 rows are never split (each split re-reads B).
  const int64_t m_units = p.M < 8 ? 1 : p.M;
  int best_tm = 1, best_tn = 1;
  double best = 1e300;
  for (int tn = 1; tn <= T; ++tn) {
    const int tm = T / tn;
    if (tn > p.n_panels || tm > m_units) continue;
    const double cost = double((p.n_panels + tn - 1) / tn) * double((m_units + tm - 1) / tm);
    if (cost < best * 0.999 || (cost <= best * 1.001 && tn > best_tn)) {
      best = cost;
      best_tm = tm;
      best_tn = tn;
    }
  }
  if (best_tm * best_tn <= 1) {
    run_block(p, ks, kb, 0, p.M, 0, p.n_panels);
    return;
  }
  const int tm = best_tm, tn = best_tn;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point fork = Clock::now();
  Clock::time_point own_start{}, own_done{};
  parallel_for(0, int64_t(tm) * tn, 1, [&](int64_t b, int64_t e) {
    if (b == 0) own_start = Clock::now();  // the calling thread's chunk
    for (int64_t t = b; t < e; ++t) {
      const int64_t ti = t / tn, tj = t % tn;
      const int64_t m0 = p.M * ti / tm, m1 = p.M * (ti + 1) / tm;
      run_block(p, ks, kb, m0, m1, p.n_panels * tj / tn, p.n_panels * (tj + 1) / tn);
    }
    if (b == 0) own_done = Clock::now();
  });
  const int64_t overhead_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>((Clock::now() - fork) - (own_done - own_start)).count();
  record_parallel_overhead(overhead_ns);
}

void check_epilogue(const Epilogue& ep, int64_t M, int64_t N) {
  const int act = static_cast<int>(ep.act);
  LG_CHECK(act >= 0 && act <= 6, ep, "has an unknown activation ", act);
  if (ep.residual) LG_CHECK(M <= 1 || ep.ld_residual >= N, ep, "ld_residual ", ep.ld_residual, " < N ", N);
}

void check_a_c(const float* a, int64_t M, int64_t K, int64_t lda, const float* c, int64_t N, int64_t ldc) {
  LG_CHECK(M >= 0, M, "must be >= 0, got ", M);
  LG_CHECK(K >= 0, K, "must be >= 0, got ", K);
  LG_CHECK(M <= 1 || lda >= K, lda, "must be >= K (", K, "), got ", lda);
  LG_CHECK(M <= 1 || ldc >= N, ldc, "must be >= N (", N, "), got ", ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || N == 0 || c != nullptr, c, "is null");
}

Problem packed_problem(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                       const Epilogue& ep) {
  return Problem{a, lda, 1, b.data.get(), b.rows, b.n_panels, b.last_width, b.bf16, c, ldc, M, b.N, K, &ep};
}

}  // namespace

std::shared_ptr<PackedB> pack_b_f32(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                    bool huge_pages) {
  check_b(b, K, N, stride_k, stride_n);
  auto p = make_packed(K, N, false, huge_pages);
  pack_b_panels_f32(b, K, N, stride_k, stride_n, reinterpret_cast<float*>(p->data.get()));
  return p;
}

std::shared_ptr<PackedB> pack_b_bf16(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                     bool huge_pages) {
  check_b(b, K, N, stride_k, stride_n);
  auto p = make_packed(K, N, true, huge_pages);
  for (int64_t j = 0; j < p->n_panels; ++j) {
    const int w = p->width(j);
    const int64_t n0 = j * kPanel;
    uint32_t* d = p->data.get() + j * p->rows * kPanel;
    for (int64_t kp = 0; kp < p->rows; ++kp) {
      for (int c = 0; c < w; ++c) {
        const int64_t n = n0 + c, k = 2 * kp;
        uint32_t v = 0;
        if (n < N) {
          v = f32_to_bf16_rne(b[k * stride_k + n * stride_n]);
          if (k + 1 < K) v |= f32_to_bf16_rne(b[(k + 1) * stride_k + n * stride_n]) << 16;
        }
        d[kp * w + c] = v;
      }
    }
  }
  return p;
}

bool bf16_supported() {
  return LG_HAVE_AVX512_KERNELS && active_isa() == Isa::avx512 && cpu_features().avx512_bf16;
}

void gemm_f32_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                     const Epilogue& ep) {
  LG_CHECK(!b.bf16, b, "is packed as bf16 (use gemm_bf16_packed)");
  LG_CHECK(K == b.K, K, "is ", K, " but the packed B has K = ", b.K);
  check_a_c(a, M, K, lda, c, b.N, ldc);
  check_epilogue(ep, M, b.N);
  run(packed_problem(a, M, K, lda, b, c, ldc, ep), true);
}

void gemm_f32_packed_st(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c,
                        int64_t ldc, const Epilogue& ep) {
  LG_CHECK(!b.bf16, b, "is packed as bf16 (use gemm_bf16_packed)");
  LG_CHECK(K == b.K, K, "is ", K, " but the packed B has K = ", b.K);
  check_a_c(a, M, K, lda, c, b.N, ldc);
  check_epilogue(ep, M, b.N);
  run(packed_problem(a, M, K, lda, b, c, ldc, ep), false);
}

void gemm_bf16_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                      const Epilogue& ep) {
  LG_CHECK(b.bf16, b, "is packed as f32 (use gemm_f32_packed)");
  LG_CHECK(K == b.K, K, "is ", K, " but the packed B has K = ", b.K);
  check_a_c(a, M, K, lda, c, b.N, ldc);
  check_epilogue(ep, M, b.N);
  run(packed_problem(a, M, K, lda, b, c, ldc, ep), true);
}

void gemm_f32(const float* a, int64_t lda_m, int64_t lda_k, const float* b, int64_t ldb_k, int64_t ldb_n, float* c,
              int64_t ldc, int64_t M, int64_t N, int64_t K, const Epilogue& ep, bool threads) {
  LG_CHECK(M >= 0, M, "must be >= 0, got ", M);
  LG_CHECK(lda_m >= 0 && lda_k >= 0, lda_m, "and lda_k must be >= 0");
  LG_CHECK(M <= 1 || ldc >= N, ldc, "must be >= N (", N, "), got ", ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || N == 0 || c != nullptr, c, "is null");
  check_b(b, K, N, ldb_k, ldb_n);
  check_epilogue(ep, M, N);
  if (M == 0 || N == 0) return;
  const int64_t n_panels = (N + kPanel - 1) / kPanel;
  // Its own thread-local buffer (tls_scratch holds the packed A blocks of this thread).
  static thread_local Scratch bscratch;
  float* bp = reinterpret_cast<float*>(bscratch.get(n_panels * K * kPanel));
  pack_b_panels_f32(b, K, N, ldb_k, ldb_n, bp);
  const Problem p{a, lda_m, lda_k, reinterpret_cast<const uint32_t*>(bp), K, n_panels, last_panel_width(N), false,
                  c, ldc, M, N, K, &ep};
  run(p, threads);
}

}  // namespace lg::gemm

namespace lg::gemm {

void gemm_f32_batched(const std::vector<int64_t>& batch_shape, const float* a,
                      const std::vector<int64_t>& a_batch_strides, int64_t lda_m, int64_t lda_k, const float* b,
                      const std::vector<int64_t>& b_batch_strides, int64_t ldb_k, int64_t ldb_n, float* c,
                      const std::vector<int64_t>& c_batch_strides, int64_t ldc, int64_t M, int64_t N, int64_t K,
                      const Epilogue& ep) {
  const size_t nd = batch_shape.size();
  LG_CHECK(a_batch_strides.size() == nd, a_batch_strides, "has ", a_batch_strides.size(), " entries, expected ", nd);
  LG_CHECK(b_batch_strides.size() == nd, b_batch_strides, "has ", b_batch_strides.size(), " entries, expected ", nd);
  LG_CHECK(c_batch_strides.size() == nd, c_batch_strides, "has ", c_batch_strides.size(), " entries, expected ", nd);
  LG_CHECK(ep.residual == nullptr, ep, "residual is not supported by the batched GEMM");
  int64_t nb = 1;
  for (size_t d = 0; d < nd; ++d) {
    LG_CHECK(batch_shape[d] >= 0, batch_shape, "has a negative size ", batch_shape[d]);
    LG_CHECK(a_batch_strides[d] >= 0 && b_batch_strides[d] >= 0 && c_batch_strides[d] >= 0, batch_shape,
             "strides must be >= 0");
    nb *= batch_shape[d];
  }
  if (nb == 0 || M == 0 || N == 0) return;
  auto offsets = [&](int64_t idx, int64_t& oa, int64_t& ob, int64_t& oc) {
    oa = ob = oc = 0;
    for (size_t d = nd; d-- > 0;) {
      const int64_t i = idx % batch_shape[d];
      idx /= batch_shape[d];
      oa += i * a_batch_strides[d];
      ob += i * b_batch_strides[d];
      oc += i * c_batch_strides[d];
    }
  };
  const int T = get_num_threads();
  const bool per_batch = T > 1 && (nb % T == 0 || nb >= 4 * T);
  if (per_batch) {
    parallel_for(0, nb, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        int64_t oa, ob, oc;
        offsets(i, oa, ob, oc);
        gemm_f32(a + oa, lda_m, lda_k, b + ob, ldb_k, ldb_n, c + oc, ldc, M, N, K, ep, false);
      }
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) {
      int64_t oa, ob, oc;
      offsets(i, oa, ob, oc);
      gemm_f32(a + oa, lda_m, lda_k, b + ob, ldb_k, ldb_n, c + oc, ldc, M, N, K, ep, true);
    }
  }
}

void detail::epilogue_portable(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  epilogue_scalar(c, ldc, m, n, ep);
}

}  // namespace lg::gemm
