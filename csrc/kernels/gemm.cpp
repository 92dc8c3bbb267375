// fp32 / bf16 GEMM: packing, the precision's kernel for the one blocked driver (gemm_driver.h), ISA dispatch and
// the portable kernels (portable code; see gemm.h).
//
// On the driver's blocking: for each KC slice of K, for each MC block of rows, A is packed into micro-panels (MR
// rows interleaved); then for every B panel (kPanel columns, pre-packed) the micro-kernel runs over the MR-row
// tiles, so a B panel slice (KC x 32) stays in L1/L2 while the packed A block (MC x KC) stays in L2. C tiles are
// written on the first K slice and accumulated on later ones; the epilogue runs on the last one while the tile is
// in registers. M <= 4 takes the GEMV-like path that streams each B panel once, A read in place.
#include "kernels/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "kernels/gemm_driver.h"

namespace lg::gemm {

using detail::IsaKernels;
using detail::kPanel;
using detail::TileEpi;

// f32: K words per column; bf16: ceil(K / 2) k-pairs.
struct PackedB : detail::Panels {
  bool bf16 = false;
};

int64_t packed_k(const PackedB& p) { return p.K; }
int64_t packed_n(const PackedB& p) { return p.N; }
bool packed_is_bf16(const PackedB& p) { return p.bf16; }
int64_t packed_nbytes(const PackedB& p) { return p.nbytes(); }
const void* packed_data(const PackedB& p) { return p.data.get(); }

int64_t packed_f32_nbytes(int64_t K, int64_t N) {
  LG_CHECK(K >= 0 && N >= 0, K, "and N must be >= 0, got ", K, " x ", N);
  const int64_t panels = (N + kPanel - 1) / kPanel;
  return panels == 0 ? 0 : ((panels - 1) * kPanel + detail::last_panel_width(N)) * K * 4;
}

std::shared_ptr<PackedB> packed_b_f32_from(const void* words, int64_t nbytes, int64_t K, int64_t N, bool borrow,
                                           bool huge_pages) {
  const int64_t want = packed_f32_nbytes(K, N);
  LG_CHECK(nbytes == want, nbytes, "is ", nbytes, ", not the ", want, " bytes of a packed ", K, " x ", N, " f32 B");
  LG_CHECK(words != nullptr || nbytes == 0, words, "is null");
  auto p = std::make_shared<PackedB>();
  if (borrow) {
    LG_CHECK(reinterpret_cast<std::uintptr_t>(words) % 64 == 0, words, "is not 64-byte aligned (needed to read panels in place)");
    p->K = K;
    p->N = N;
    p->rows = K;
    p->n_panels = (N + kPanel - 1) / kPanel;
    p->last_width = detail::last_panel_width(N);
    p->data = detail::AlignedPtr(static_cast<uint32_t*>(const_cast<void*>(words)), detail::AlignedFree{false});
  } else {
    p->allocate(K, N, K, huge_pages);
    if (nbytes) std::memcpy(p->data.get(), words, static_cast<size_t>(nbytes));
  }
  return p;
}

namespace {

// ------------------------------------------------------------------------------------------------ scalar math

}  // namespace

float act_scalar(float v, Act act) {
  switch (act) {
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

namespace {

void epilogue_scalar(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  for (int i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    const float* res = ep->residual ? ep->residual + i * ep->ld_residual : nullptr;
    for (int64_t j = 0; j < n; ++j) {
      float v = row[j];
      if (ep->bias) v += ep->bias[j];
      if (res && ep->residual_before_act) v += res[j];
      v = act_scalar(v, static_cast<Act>(ep->act));
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
                  bool accumulate, const TileEpi* ep, const char*, int64_t) {
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
                       int nr, bool accumulate, const TileEpi* ep, const char*, int64_t) {
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
  if (avx512_bf16_active()) return detail::kernels_bf16_avx512();
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
  const int lw = detail::last_panel_width(N);
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
      // 8 columns at a time: 8 source rows read in step, each k writing 32 contiguous bytes of the panel (a column
      // at a time wrote one float per 128-byte row of the panel: BERT-base's weights packed at ~1.3 GB/s at load)
      int64_t c = 0;
      for (; c + 8 <= nn; c += 8) {
        const float* src[8];
        for (int i = 0; i < 8; ++i) src[i] = b + (n0 + c + i) * sn;
        for (int64_t k = 0; k < K; ++k) {
          float* d = p + k * w + c;
          const int64_t o = k * sk;
          for (int i = 0; i < 8; ++i) d[i] = src[i][o];
        }
      }
      for (; c < nn; ++c) {
        const float* src = b + (n0 + c) * sn;
        for (int64_t k = 0; k < K; ++k) p[k * w + c] = src[k * sk];
      }
    }
  }
}

std::shared_ptr<PackedB> make_packed(int64_t K, int64_t N, bool bf16, bool huge_pages) {
  auto p = std::make_shared<PackedB>();
  p->bf16 = bf16;
  p->allocate(K, N, bf16 ? (K + 1) / 2 : K, huge_pages);
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


// ------------------------------------------------------------------------------------------------ the kernel

// fp32 or bf16 operands for the driver: A strided (packed per block), B pre-packed panels, C with the epilogue.
struct F32Kernel {
  detail::PanelView b;
  int max_mr = 1;
  const float* a;
  int64_t lda_m, lda_k, K;
  float* c;
  int64_t ldc;
  const Epilogue* ep;
  bool epi, bf16;
  IsaKernels ks;
  detail::MicroKernel micro;
  detail::PackABf16 pack_bf16 = nullptr;

  F32Kernel(const float* a_, int64_t lda_m_, int64_t lda_k_, detail::PanelView b_, int64_t K_, bool bf16_,
            float* c_, int64_t ldc_, const Epilogue& ep_)
      : b(b_), a(a_), lda_m(lda_m_), lda_k(lda_k_), K(K_), c(c_), ldc(ldc_), ep(&ep_), epi(detail::has_epilogue(ep_)),
        bf16(bf16_), ks(isa_kernels()), micro(ks.micro) {
    max_mr = ks.max_mr;
    if (bf16) {
      const detail::IsaKernelsBf16 kb = bf16_kernels();
      max_mr = kb.max_mr;
      micro = kb.micro;
      pack_bf16 = kb.pack_a;
    }
  }

  int64_t kc_max() const { return detail::blocking().kc.load(std::memory_order_relaxed); }
  int64_t mc_max(int64_t) const { return detail::blocking().mc.load(std::memory_order_relaxed); }
  int64_t a_words(int64_t kc) const { return kc; }

  // K == 0 (C = epilogue(0)), and the GEMV path: few rows over whole panels, A read in place.
  bool direct(int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
    if (K == 0) {
      const int64_t n0 = j0 * kPanel, n = std::min<int64_t>(j1 * kPanel, b.N) - n0;
      for (int64_t i = m0; i < m1; ++i) std::fill(c + i * ldc + n0, c + i * ldc + n0 + n, 0.0f);
      const TileEpi te = detail::tile_epi(*ep, m0, n0);
      if (epi) ks.epilogue(c + m0 * ldc + n0, ldc, static_cast<int>(m1 - m0), n, &te);
      return true;
    }
    if (bf16 || !ks.small_m || m1 - m0 > 4 || lda_k != 1) return false;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t n0 = j * kPanel;
      const int nr = static_cast<int>(std::min<int64_t>(b.width(j), b.N - n0));
      const TileEpi te = detail::tile_epi(*ep, m0, n0);
      ks.small_m(static_cast<int>(m1 - m0), K, a + m0 * lda_m, lda_m, reinterpret_cast<const float*>(b.panel(j)),
                 b.width(j), c + m0 * ldc + n0, ldc, nr, epi ? &te : nullptr);
    }
    return true;
  }

  const uint32_t* pack(int64_t ic, int64_t mc, int64_t pc, int64_t kc, int tile_mr) {
    static thread_local detail::Scratch scratch;
    uint32_t* abuf = scratch.get(mc * kc);
    if (bf16)
      pack_bf16(a, lda_m, K, ic, mc, pc, kc, tile_mr, abuf);
    else
      (ks.pack_a && lda_k == 1 ? ks.pack_a : pack_a_f32)(a, lda_m, lda_k, ic, mc, pc, kc, tile_mr,
                                                          reinterpret_cast<float*>(abuf));
    return abuf;
  }

  void tile(const uint32_t* ap, const uint32_t* bp, int w, int64_t i, int64_t n0, int mr, int nr, int64_t kc,
            bool first, bool last, const char* pf, int64_t pf_bytes) const {
    const bool with_epi = last && epi;
    const TileEpi te = with_epi ? detail::tile_epi(*ep, i, n0) : TileEpi{};
    micro(kc, ap, bp, w, c + i * ldc + n0, ldc, mr, nr, !first, with_epi ? &te : nullptr, pf, pf_bytes);
  }
};

// fp32 estimate 1e11 flop/s per thread (bf16 the same: conservative), B streamed at 40 GB/s.
void run(F32Kernel& kn, int64_t M, int64_t N, bool threads) {
  const double flops = 2.0 * double(M) * double(N) * double(std::max<int64_t>(kn.K, 1));
  const double b_bytes = double(kn.K) * double(N) * (kn.bf16 ? 2.0 : 4.0);
  detail::run_gemm(kn, M, std::max(flops / 1.0e11, b_bytes / 4.0e10), threads);
}

}  // namespace

void detail::check_epilogue(const Epilogue& ep, int64_t M, int64_t N) {
  const int act = static_cast<int>(ep.act);
  LG_CHECK(valid_act(act), ep, "has an unknown activation ", act);
  if (ep.residual) LG_CHECK(M <= 1 || ep.ld_residual >= N, ep, "ld_residual ", ep.ld_residual, " < N ", N);
}

void detail::check_a_c(const float* a, int64_t M, int64_t K, int64_t lda, const float* c, int64_t N, int64_t ldc) {
  LG_CHECK(M >= 0, M, "must be >= 0, got ", M);
  LG_CHECK(K >= 0, K, "must be >= 0, got ", K);
  LG_CHECK(M <= 1 || lda >= K, lda, "must be >= K (", K, "), got ", lda);
  LG_CHECK(M <= 1 || ldc >= N, ldc, "must be >= N (", N, "), got ", ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || N == 0 || c != nullptr, c, "is null");
}

namespace {

void run_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                const Epilogue& ep, bool threads) {
  LG_CHECK(K == b.K, K, "is ", K, " but the packed B has K = ", b.K);
  detail::check_a_c(a, M, K, lda, c, b.N, ldc);
  detail::check_epilogue(ep, M, b.N);
  F32Kernel kn(a, lda, 1, b.view(), K, b.bf16, c, ldc, ep);
  run(kn, M, b.N, threads);
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
  return LG_HAVE_AVX512_KERNELS && avx512_bf16_active();
}

void gemm_f32_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                     const Epilogue& ep) {
  LG_CHECK(!b.bf16, b, "is packed as bf16 (use gemm_bf16_packed)");
  run_packed(a, M, K, lda, b, c, ldc, ep, true);
}

void gemm_f32_packed_st(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c,
                        int64_t ldc, const Epilogue& ep) {
  LG_CHECK(!b.bf16, b, "is packed as bf16 (use gemm_bf16_packed)");
  run_packed(a, M, K, lda, b, c, ldc, ep, false);
}

void gemm_bf16_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                      const Epilogue& ep) {
  LG_CHECK(b.bf16, b, "is packed as f32 (use gemm_f32_packed)");
  run_packed(a, M, K, lda, b, c, ldc, ep, true);
}

void gemm_f32(const float* a, int64_t lda_m, int64_t lda_k, const float* b, int64_t ldb_k, int64_t ldb_n, float* c,
              int64_t ldc, int64_t M, int64_t N, int64_t K, const Epilogue& ep, bool threads) {
  LG_CHECK(M >= 0, M, "must be >= 0, got ", M);
  LG_CHECK(lda_m >= 0 && lda_k >= 0, lda_m, "and lda_k must be >= 0");
  LG_CHECK(M <= 1 || ldc >= N, ldc, "must be >= N (", N, "), got ", ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || N == 0 || c != nullptr, c, "is null");
  check_b(b, K, N, ldb_k, ldb_n);
  detail::check_epilogue(ep, M, N);
  if (M == 0 || N == 0) return;
  const int64_t n_panels = (N + kPanel - 1) / kPanel;
  // Its own thread-local buffer (tls_scratch holds the packed A blocks of this thread).
  static thread_local detail::Scratch bscratch;
  float* bp = reinterpret_cast<float*>(bscratch.get(n_panels * K * kPanel));
  pack_b_panels_f32(b, K, N, ldb_k, ldb_n, bp);
  const detail::PanelView view{reinterpret_cast<const uint32_t*>(bp), N, K, n_panels, detail::last_panel_width(N)};
  F32Kernel kn(a, lda_m, lda_k, view, K, false, c, ldc, ep);
  run(kn, M, N, threads);
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

IsaKernels detail::fp32_kernels() {
  IsaKernels ks = isa_kernels();
  if (!ks.pack_a) ks.pack_a = pack_a_f32;
  return ks;
}

void detail::epilogue_portable(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep) {
  epilogue_scalar(c, ldc, m, n, ep);
}

}  // namespace lg::gemm
