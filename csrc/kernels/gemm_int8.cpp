// int8 GEMM driver (portable code; see gemm_int8.h): packing, row quantisation, threading, ISA dispatch, and the
// portable kernels.
//
// Per thread, on its rectangle of C: for each block of rows, the rows are quantised (min/max, then u8) and packed
// into mr-row tiles of 4-byte k groups; then for every B panel the micro-kernel runs over the tiles, the whole K at
// once (int32 accumulators stay in registers: no partial sums in memory), and dequantises with the epilogue.
#include "kernels/gemm_int8.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"

namespace lg::gemm {

using detail::DequantTile;
using detail::IsaKernelsS8;
using detail::kPanel;
using detail::TileEpi;

struct PackedS8 {
  int64_t K = 0, N = 0, groups = 0, n_panels = 0;
  int last_width = kPanel;
  std::vector<int8_t, std::allocator<int8_t>> data;  // panels back to back
  std::vector<int32_t> colsum;                        // N (+ padding to a whole panel)
  std::vector<float> scales;                          // N (+ padding)

  int width(int64_t j) const { return j == n_panels - 1 ? last_width : kPanel; }
  const int8_t* panel(int64_t j) const { return data.data() + j * groups * kPanel * 4; }
};

int64_t packed_s8_k(const PackedS8& p) { return p.K; }
int64_t packed_s8_n(const PackedS8& p) { return p.N; }
int64_t packed_s8_nbytes(const PackedS8& p) {
  return static_cast<int64_t>(p.data.size() + 8 * p.colsum.size());
}

namespace {

// ------------------------------------------------------------------------------------------------ portable kernels

void minmax_scalar(const float* a, int64_t K, float* mn, float* mx) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t k = 0; k < K; ++k) {
    lo = std::fmin(lo, a[k]);  // fmin/fmax skip NaN (the vector kernels do too)
    hi = std::fmax(hi, a[k]);
  }
  *mn = lo;
  *mx = hi;
}

void quant_scalar(const float* a, int64_t K, float inv, int32_t z, uint8_t* q) {
  for (int64_t k = 0; k < K; ++k) {
    float v = a[k] * inv;
    v = std::isnan(v) ? -256.0f : std::fmin(std::fmax(v, -256.0f), 511.0f);  // as the vector kernels: NaN -> 0
    q[k] = static_cast<uint8_t>(std::fmin(std::fmax(std::nearbyint(v) + float(z), 0.0f), 255.0f));
  }
}

void micro_s8_scalar(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr,
                     const DequantTile* dq, float* c, int64_t ldc, const TileEpi* ep, int32_t* raw) {
  for (int i = 0; i < mr; ++i) {
    int32_t acc[kPanel] = {};
    for (int64_t g = 0; g < groups; ++g) {
      uint32_t word = ap[g * mr + i];
      uint8_t a4[4];
      std::memcpy(a4, &word, 4);
      const int8_t* b = bp + g * width * 4;
      for (int j = 0; j < nr; ++j)
        for (int r = 0; r < 4; ++r) acc[j] += int32_t(a4[r]) * int32_t(b[j * 4 + r]);
    }
    if (raw) {
      std::memcpy(raw + i * ldc, acc, sizeof(int32_t) * nr);
      continue;
    }
    float* row = c + i * ldc;
    const float si = dq->s[i];
    for (int j = 0; j < nr; ++j) row[j] = float(acc[j] - dq->z[i] * dq->colsum[j]) * (si * dq->sb[j]);
  }
  if (!raw && ep) detail::epilogue_portable(c, ldc, mr, nr, ep);
}

IsaKernelsS8 scalar_kernels_s8() {
  return IsaKernelsS8{4, micro_s8_scalar, minmax_scalar, quant_scalar, detail::epilogue_portable};
}

IsaKernelsS8 isa_kernels_s8() {
  const Isa isa = active_isa();
#if LG_HAVE_AVX512_KERNELS
  if (isa == Isa::avx512) return detail::kernels_s8_avx512();
#endif
#if LG_HAVE_AVX2_KERNELS
  if (isa >= Isa::avx2) return detail::kernels_s8_avx2();
#endif
  (void)isa;
  return scalar_kernels_s8();
}

int last_panel_width(int64_t N) {
  const int64_t rem = N % kPanel;
  return (rem != 0 && rem <= kPanel / 2) ? kPanel / 2 : kPanel;
}

// The row's quantisation parameters (see gemm_int8.h); scalar code only, shared by every ISA path.
void row_qparams(float mn, float mx, float* scale, float* inv, int32_t* z) {
  float s = (mx - mn) / 255.0f;
  if (!(s > 0.0f) || !std::isfinite(s)) s = 1.0f;  // all-zero row (or inf/NaN inputs: garbage in, no UB)
  *scale = s;
  *inv = 1.0f / s;
  const float zf = std::nearbyint(-mn / s);
  *z = static_cast<int32_t>(std::fmax(std::fmin(zf, 255.0f), 0.0f));
}

struct Problem {
  const float* a = nullptr;     // f32 rows (dynamic), or
  const uint8_t* a8 = nullptr;  // u8 rows (raw)
  int64_t lda = 0;
  const PackedS8* b = nullptr;
  float* c = nullptr;
  int32_t* c32 = nullptr;
  int64_t ldc = 0;
  int64_t M = 0;
  const Epilogue* ep = nullptr;
};

bool has_epilogue(const Epilogue& e) { return e.bias || e.residual || e.act != Act::None; }

struct Scratch {
  std::vector<uint32_t> tiles;  // packed A rows of one block
  std::vector<uint8_t> row;     // one quantised row
  std::vector<float> s;
  std::vector<int32_t> z;
};

Scratch& tls_scratch() {
  static thread_local Scratch s;
  return s;
}

// Rows per block: the block's packed A (rows x K bytes) stays in L2 while every panel of the thread passes over it.
int64_t block_rows(int64_t K, int max_mr) {
  const int64_t rows = std::max<int64_t>(max_mr, (int64_t(256) << 10) / std::max<int64_t>(K, 1));
  return std::min<int64_t>(rows / max_mr * max_mr, 1024);
}

void run_block(const Problem& p, const IsaKernelsS8& ks, int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
  const PackedS8& b = *p.b;
  const int64_t K = b.K, G = b.groups;
  const bool epi = p.ep && has_epilogue(*p.ep);
  const int max_mr = ks.max_mr;
  const int64_t MC = block_rows(K, max_mr);
  Scratch& sc = tls_scratch();
  for (int64_t ic = m0; ic < m1; ic += MC) {
    const int64_t mc = std::min<int64_t>(MC, m1 - ic);
    const int64_t n_tiles = (mc + max_mr - 1) / max_mr;
    const int tile_mr = static_cast<int>((mc + n_tiles - 1) / n_tiles);
    sc.tiles.assign(static_cast<size_t>(mc * G), 0u);
    sc.row.assign(static_cast<size_t>(G * 4), 0);
    sc.s.resize(static_cast<size_t>(mc));
    sc.z.resize(static_cast<size_t>(mc));
    for (int64_t t0 = 0; t0 < mc; t0 += tile_mr) {
      const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
      uint32_t* tile = sc.tiles.data() + t0 * G;
      for (int i = 0; i < mr; ++i) {
        const int64_t r = ic + t0 + i;
        const uint8_t* q;
        if (p.a8) {
          std::memcpy(sc.row.data(), p.a8 + r * p.lda, static_cast<size_t>(K));
        } else {
          float mn, mx, inv;
          ks.minmax(p.a + r * p.lda, K, &mn, &mx);
          row_qparams(mn, mx, &sc.s[t0 + i], &inv, &sc.z[t0 + i]);
          ks.quant(p.a + r * p.lda, K, inv, sc.z[t0 + i], sc.row.data());
        }
        q = sc.row.data();
        for (int64_t g = 0; g < G; ++g) std::memcpy(tile + g * mr + i, q + 4 * g, 4);
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      const int w = b.width(j);
      const int64_t n0 = j * kPanel;
      const int nr = static_cast<int>(std::min<int64_t>(w, b.N - n0));
      for (int64_t t0 = 0; t0 < mc; t0 += tile_mr) {
        const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
        const int64_t i = ic + t0;
        const uint32_t* ap = sc.tiles.data() + t0 * G;
        if (p.c32) {
          ks.micro(G, ap, b.panel(j), w, mr, nr, nullptr, nullptr, p.ldc, nullptr, p.c32 + i * p.ldc + n0);
          continue;
        }
        const DequantTile dq{sc.z.data() + t0, sc.s.data() + t0, b.colsum.data() + n0, b.scales.data() + n0};
        const Epilogue& e = *p.ep;
        const TileEpi te{e.bias ? e.bias + n0 : nullptr, e.residual ? e.residual + i * e.ld_residual + n0 : nullptr,
                         e.ld_residual, e.residual_before_act ? 1 : 0, static_cast<int>(e.act)};
        ks.micro(G, ap, b.panel(j), w, mr, nr, &dq, p.c + i * p.ldc + n0, p.ldc, epi ? &te : nullptr, nullptr);
      }
    }
  }
}

void fill_k0(const Problem& p, const IsaKernelsS8& ks) {  // K == 0: C = epilogue(0)
  const int64_t N = p.b->N;
  for (int64_t i = 0; i < p.M; ++i) {
    if (p.c32) std::fill(p.c32 + i * p.ldc, p.c32 + i * p.ldc + N, 0);
    else std::fill(p.c + i * p.ldc, p.c + i * p.ldc + N, 0.0f);
  }
  if (p.c && p.ep && has_epilogue(*p.ep)) {
    const Epilogue& e = *p.ep;
    for (int64_t i = 0; i < p.M; ++i) {
      const TileEpi te{e.bias, e.residual ? e.residual + i * e.ld_residual : nullptr, e.ld_residual,
                       e.residual_before_act ? 1 : 0, static_cast<int>(e.act)};
      ks.epilogue(p.c + i * p.ldc, p.ldc, 1, N, &te);
    }
  }
}

void run(const Problem& p) {
  const PackedS8& b = *p.b;
  if (p.M == 0 || b.N == 0) return;
  const IsaKernelsS8 ks = isa_kernels_s8();
  if (b.K == 0) return fill_k0(p, ks);
  // 2 int-ops per multiply-add; VNNI runs ~4x the fp32 FMA rate (the fp32 GEMM's estimate is 1e11 flop/s/thread)
  const double ops = 2.0 * double(p.M) * double(b.N) * double(b.K);
  int T = get_num_threads();
  if (ops < 1048576.0) T = 1;
  if (T > 1) T = std::min(T, threads_worth_using(std::max(ops / 4.0e11, double(b.K) * double(b.N) / 4.0e10)));
  // Split panels first (each thread streams its share of B, quantising the rows itself), rows when too few panels.
  const int tn = static_cast<int>(std::min<int64_t>(T, b.n_panels));
  const int tm = std::max(1, std::min(T / std::max(tn, 1), static_cast<int>(std::max<int64_t>(p.M / 8, 1))));
  if (tm * tn <= 1) return run_block(p, ks, 0, p.M, 0, b.n_panels);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point fork = Clock::now();
  Clock::time_point own_start{}, own_done{};
  parallel_for(0, int64_t(tm) * tn, 1, [&](int64_t lo, int64_t hi) {
    if (lo == 0) own_start = Clock::now();
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t ti = t / tn, tj = t % tn;
      run_block(p, ks, p.M * ti / tm, p.M * (ti + 1) / tm, b.n_panels * tj / tn, b.n_panels * (tj + 1) / tn);
    }
    if (lo == 0) own_done = Clock::now();
  });
  record_parallel_overhead(
      std::chrono::duration_cast<std::chrono::nanoseconds>((Clock::now() - fork) - (own_done - own_start)).count());
}

void check_problem(int64_t M, int64_t K, int64_t lda, const PackedS8& b, int64_t ldc) {
  LG_CHECK(M >= 0, M, "must be >= 0, got ", M);
  LG_CHECK(K == b.K, K, "must equal the packed B's K = ", b.K, ", got ", K);
  LG_CHECK(M <= 1 || lda >= K, lda, "must be >= K = ", K, ", got ", lda);
  LG_CHECK(M <= 1 || ldc >= b.N, ldc, "must be >= N = ", b.N, ", got ", ldc);
}

}  // namespace

std::shared_ptr<PackedS8> pack_b_s8(const int8_t* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                    const float* scales) {
  LG_CHECK(K >= 0 && K <= kMaxKInt8, K, "must be in [0, ", kMaxKInt8, "] (int32 sums of u8 x s8 products cannot ",
           "overflow below that), got ", K);
  LG_CHECK(N >= 0, N, "must be >= 0, got ", N);
  LG_CHECK(stride_k >= 0 && stride_n >= 0, stride_k, "and stride_n must be >= 0, got ", stride_k, ", ", stride_n);
  LG_CHECK(K == 0 || N == 0 || b != nullptr, b, "is null");
  LG_CHECK(N == 0 || scales != nullptr, scales, "is null");
  auto p = std::make_shared<PackedS8>();
  p->K = K;
  p->N = N;
  p->groups = (K + 3) / 4;
  p->n_panels = (N + kPanel - 1) / kPanel;
  p->last_width = last_panel_width(N);
  const int64_t padded_n = p->n_panels * kPanel;
  p->data.assign(static_cast<size_t>(p->n_panels * p->groups * kPanel * 4), 0);
  p->colsum.assign(static_cast<size_t>(padded_n), 0);
  p->scales.assign(static_cast<size_t>(padded_n), 0.0f);
  for (int64_t j = 0; j < p->n_panels; ++j) {
    const int w = p->width(j);
    int8_t* dst = p->data.data() + j * p->groups * kPanel * 4;
    for (int c = 0; c < w && j * kPanel + c < N; ++c) {
      const int64_t n = j * kPanel + c;
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int8_t v = b[k * stride_k + n * stride_n];
        dst[(k / 4) * w * 4 + c * 4 + k % 4] = v;
        sum += v;
      }
      p->colsum[static_cast<size_t>(n)] = sum;
      p->scales[static_cast<size_t>(n)] = scales[n];
    }
  }
  return p;
}

void gemm_u8s8_dynamic(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float* c, int64_t ldc,
                       const Epilogue& ep) {
  check_problem(M, K, lda, b, ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || b.N == 0 || c != nullptr, c, "is null");
  Problem p;
  p.a = a;
  p.lda = lda;
  p.b = &b;
  p.c = c;
  p.ldc = ldc;
  p.M = M;
  p.ep = &ep;
  run(p);
}

void gemm_u8s8s32(const uint8_t* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, int32_t* c, int64_t ldc) {
  check_problem(M, K, lda, b, ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || b.N == 0 || c != nullptr, c, "is null");
  Problem p;
  p.a8 = a;
  p.lda = lda;
  p.b = &b;
  p.c32 = c;
  p.ldc = ldc;
  p.M = M;
  run(p);
}

void quantize_rows_u8(const float* a, int64_t M, int64_t K, int64_t lda, uint8_t* q, int64_t ldq, float* scales,
                      int32_t* zero_points) {
  LG_CHECK(M >= 0 && K >= 0, M, "and K must be >= 0, got ", M, ", ", K);
  LG_CHECK(M <= 1 || lda >= K, lda, "must be >= K = ", K, ", got ", lda);
  LG_CHECK(M <= 1 || ldq >= K, ldq, "must be >= K = ", K, ", got ", ldq);
  const IsaKernelsS8 ks = isa_kernels_s8();
  for (int64_t i = 0; i < M; ++i) {
    float mn, mx, inv;
    ks.minmax(a + i * lda, K, &mn, &mx);
    row_qparams(mn, mx, &scales[i], &inv, &zero_points[i]);
    ks.quant(a + i * lda, K, inv, zero_points[i], q + i * ldq);
  }
}

}  // namespace lg::gemm
