// Weight-only int8 / int4 GEMM: packing, the precision's kernel for the one blocked driver (gemm_driver.h), ISA
// dispatch and the portable kernels (portable code; see gemm_wo.h for the semantics and the packed layout).
//
// Few rows (M <= kDirectRows, the bandwidth-bound case weight-only quantisation is for) take the driver's direct
// path: each panel is streamed once per group of up to 4 rows and dequantised in registers (WoRows). More rows run
// the driver's blocked loop: per row block and panel slice the weights are dequantised once into an fp32 slice
// (WoDequant, L2-resident), which the fp32 micro-kernel then multiplies like any packed B; the dequantisation is
// amortised over the block's rows.
#include "kernels/gemm_wo.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "kernels/gemm_driver.h"

namespace lg::gemm {

using detail::kPanel;
using detail::WoPanel;

struct PackedWo : detail::Panels {
  int bits = 8;
  int64_t group = 0, n_groups = 0, chunk = 0;
  bool has_offset = false;
  std::unique_ptr<float[]> sm;  // per panel: n_groups x kPanel scales, then n_groups x kPanel offsets

  int64_t k_per_word() const { return bits == 8 ? 4 : 8; }
  WoPanel panel_of(int64_t j) const {
    const float* s = sm.get() + j * 2 * n_groups * kPanel;
    return WoPanel{reinterpret_cast<const uint8_t*>(data.get() + j * rows * kPanel), s, s + n_groups * kPanel,
                   width(j), bits, K, group, chunk, has_offset};
  }
};

int64_t packed_wo_k(const PackedWo& p) { return p.K; }
int64_t packed_wo_n(const PackedWo& p) { return p.N; }
int64_t packed_wo_nbytes(const PackedWo& p) { return p.nbytes() + p.n_panels * 2 * p.n_groups * kPanel * 4; }
int packed_wo_bits(const PackedWo& p) { return p.bits; }
int64_t packed_wo_group(const PackedWo& p) { return p.group; }

namespace {

// ------------------------------------------------------------------------------------------------ portable kernels

inline float q_at(const WoPanel& p, int64_t k, int j) {
  if (p.bits == 8) return static_cast<float>(static_cast<int8_t>(p.q[k * p.width + j]));
  const uint8_t byte = p.q[k * (p.width / 2) + 8 * (j / 16) + (j % 8)];
  return static_cast<float>((j % 16) < 8 ? byte & 15 : byte >> 4);
}

// The same order of operations as the AVX2 kernel (q * a summed per chunk, scaled once per chunk).
void rows_scalar(int m, const float* a, int64_t lda, const float* asum, int64_t n_chunks, const WoPanel& p, float* c,
                 int64_t ldc, int nr) {
  for (int i = 0; i < m; ++i) {
    float tot[kPanel] = {};
    for (int64_t ch = 0; ch < n_chunks; ++ch) {
      const int64_t k0 = ch * p.chunk, k1 = std::min(p.K, k0 + p.chunk), g = k0 / p.group;
      float acc[kPanel] = {};
      for (int64_t k = k0; k < k1; ++k) {
        const float av = a[i * lda + k];
        for (int j = 0; j < p.width; ++j) acc[j] += av * q_at(p, k, j);
      }
      for (int j = 0; j < p.width; ++j) {
        tot[j] += acc[j] * p.s[g * kPanel + j];
        if (p.has_offset) tot[j] += asum[i * n_chunks + ch] * p.m[g * kPanel + j];
      }
    }
    std::memcpy(c + i * ldc, tot, sizeof(float) * nr);
  }
}

void dequant_scalar(const WoPanel& p, int64_t k0, int64_t kv, float* out) {
  for (int64_t k = k0; k < k0 + kv; ++k, out += p.width) {
    const int64_t g = k / p.group;
    for (int j = 0; j < p.width; ++j) out[j] = q_at(p, k, j) * p.s[g * kPanel + j] + p.m[g * kPanel + j];
  }
}

detail::IsaKernelsWo wo_kernels() {
#if LG_HAVE_AVX2_KERNELS
  if (active_isa() >= Isa::avx2) return detail::kernels_wo_avx2();
#endif
  return detail::IsaKernelsWo{4, rows_scalar, dequant_scalar};
}

// ------------------------------------------------------------------------------------------------ the kernel

// Rows up to which the direct path (dequantised in registers, groups of max_rows rows per panel) beats
// dequantising panel slices for the fp32 micro-kernel (Zen 3: 1.1-1.8x our fp32 at 8-16 rows, where the blocked
// path was 0.86-0.99x; bench/results/kernels_2026-12-07_issue9_weight_only_zen3.md).
constexpr int64_t kDirectRows = 16;

struct WoKernel {
  detail::PanelView b;
  int max_mr = 1;
  const PackedWo* packed;
  const float* a;
  int64_t lda, K, kpw;
  float* c;
  int64_t ldc;
  const Epilogue* ep;
  bool epi;
  detail::IsaKernels fk;
  detail::IsaKernelsWo wk;
  // per block and slice: the k range packed; the panel slice dequantised last (keyed by its address)
  int64_t k0 = 0, kv = 0;
  const uint32_t* deq_of = nullptr;

  WoKernel(const float* a_, int64_t lda_, const PackedWo& p, float* c_, int64_t ldc_, const Epilogue& ep_)
      : b(p.view()), packed(&p), a(a_), lda(lda_), K(p.K), kpw(p.k_per_word()), c(c_), ldc(ldc_), ep(&ep_),
        epi(detail::has_epilogue(ep_)), fk(detail::fp32_kernels()), wk(wo_kernels()) {
    max_mr = fk.max_mr;
  }

  int64_t kc_max() const {
    const int64_t kc = detail::blocking().kc.load(std::memory_order_relaxed);
    return std::max<int64_t>(1, kc / kpw);
  }
  int64_t mc_max(int64_t) const { return detail::blocking().mc.load(std::memory_order_relaxed); }
  int64_t a_words(int64_t kc) const { return kc * kpw; }

  bool direct(int64_t m0, int64_t m1, int64_t j0, int64_t j1) {
    const int64_t n0 = j0 * kPanel, n = std::min<int64_t>(j1 * kPanel, b.N) - n0;
    if (K == 0) {
      for (int64_t i = m0; i < m1; ++i) std::fill(c + i * ldc + n0, c + i * ldc + n0 + n, 0.0f);
    } else if (m1 - m0 <= kDirectRows) {
      const int m = static_cast<int>(m1 - m0);
      const int64_t n_chunks = (K + packed->chunk - 1) / packed->chunk;
      static thread_local std::vector<float> asum;
      asum.assign(static_cast<size_t>(m * n_chunks), 0.0f);
      if (packed->has_offset) {
        for (int i = 0; i < m; ++i) {
          const float* row = a + (m0 + i) * lda;
          for (int64_t ch = 0; ch < n_chunks; ++ch) {
            float s = 0.0f;
            for (int64_t k = ch * packed->chunk; k < std::min(K, (ch + 1) * packed->chunk); ++k) s += row[k];
            asum[i * n_chunks + ch] = s;
          }
        }
      }
      // groups of (nearly) equal height <= max_rows; a panel is re-read per group, from L2
      const int n_groups = (m + wk.max_rows - 1) / wk.max_rows;
      for (int64_t j = j0; j < j1; ++j) {
        const int nr = static_cast<int>(std::min<int64_t>(b.width(j), b.N - j * kPanel));
        const WoPanel panel = packed->panel_of(j);
        for (int gi = 0; gi < n_groups; ++gi) {
          const int r0 = m * gi / n_groups, r1 = m * (gi + 1) / n_groups;
          wk.rows(r1 - r0, a + (m0 + r0) * lda, lda, asum.data() + r0 * n_chunks, n_chunks, panel,
                  c + (m0 + r0) * ldc + j * kPanel, ldc, nr);
        }
      }
    } else {
      return false;
    }
    const detail::TileEpi te = detail::tile_epi(*ep, m0, n0);
    if (epi) fk.epilogue(c + m0 * ldc + n0, ldc, static_cast<int>(m1 - m0), n, &te);
    return true;
  }

  // A's k columns [pc * kpw, + kc * kpw) clipped to K, each tile of tile_mr rows at t * tile_mr * kc * kpw.
  const uint32_t* pack(int64_t ic, int64_t mc, int64_t pc, int64_t kc, int tile_mr) {
    static thread_local detail::Scratch scratch;
    k0 = pc * kpw;
    kv = std::min(K, (pc + kc) * kpw) - k0;
    uint32_t* abuf = scratch.get(mc * kc * kpw);
    float* dst = reinterpret_cast<float*>(abuf);
    for (int64_t t0 = 0; t0 < mc; t0 += tile_mr) {
      const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
      fk.pack_a(a, lda, 1, ic + t0, mr, k0, kv, tile_mr, dst + t0 * kc * kpw);
    }
    deq_of = nullptr;
    return abuf;
  }

  void tile(const uint32_t* ap, const uint32_t* bp, int w, int64_t i, int64_t n0, int mr, int nr, int64_t, bool first,
            bool last, const char* pf, int64_t pf_bytes) {
    static thread_local detail::Scratch bscratch;
    float* bdeq = reinterpret_cast<float*>(bscratch.get(kv * kPanel));
    if (bp != deq_of) {
      const int64_t j = n0 / kPanel;
      wk.dequant(packed->panel_of(j), k0, kv, bdeq);
      deq_of = bp;
    }
    const bool with_epi = last && epi;
    const detail::TileEpi te = with_epi ? detail::tile_epi(*ep, i, n0) : detail::TileEpi{};
    fk.micro(kv, ap, bdeq, w, c + i * ldc + n0, ldc, mr, nr, !first, with_epi ? &te : nullptr, pf, pf_bytes);
  }
};

}  // namespace

std::shared_ptr<PackedWo> pack_b_wo(const uint8_t* q, int64_t K, int64_t N, int64_t ldq, int bits, int64_t group,
                                    const float* scales, const uint8_t* zeros) {
  LG_CHECK(bits == 8 || bits == 4, bits, "must be 8 or 4, got ", bits);
  LG_CHECK(K >= 0, K, "must be >= 0, got ", K);
  LG_CHECK(N >= 0, N, "must be >= 0, got ", N);
  const int64_t kpw = bits == 8 ? 4 : 8;
  LG_CHECK(group >= 0, group, "must be >= 0, got ", group);
  LG_CHECK(group != 0 || bits == 8, group, "0 (one group per channel) is for int8; int4 needs a group size");
  LG_CHECK(group == 0 || group >= K || group % kpw == 0, group, "must be a multiple of ", kpw, " for int", bits,
           " (or >= K), got ", group);
  LG_CHECK(bits == 4 || zeros == nullptr, zeros, "must be null for int8 (symmetric)");
  LG_CHECK(ldq >= (bits == 8 ? K : (K + 1) / 2) || N <= 1, ldq, "is smaller than a row of q");
  LG_CHECK(K == 0 || N == 0 || (q != nullptr && scales != nullptr), q, "and scales must not be null");
  LG_CHECK(K <= (int64_t(1) << 40) / std::max<int64_t>(N + kPanel, 1), N, "K * N is too large");
  auto p = std::make_shared<PackedWo>();
  p->bits = bits;
  const int64_t k_pad = (K + kpw - 1) / kpw * kpw;
  p->group = (group == 0 || group >= K) ? std::max<int64_t>(k_pad, kpw) : group;
  p->n_groups = K == 0 ? 1 : (K + p->group - 1) / p->group;
  // chunk: the k summed before scaling; <= 256 keeps a chunk of both 16-column halves in L1
  p->chunk = p->group;
  for (int64_t c = 256; p->chunk > 256 && c >= kpw; c /= 2)
    if (p->group % c == 0) p->chunk = c;
  p->has_offset = bits == 4;
  // words per column: k_pad k at 1 (int8) or 1/2 (int4) byte each
  p->allocate(K, N, k_pad * bits / 32, true);
  const int64_t ng = p->n_groups;
  p->sm.reset(new float[static_cast<size_t>(std::max<int64_t>(p->n_panels, 1) * 2 * ng * kPanel)]());
  for (int64_t j = 0; j < p->n_panels; ++j) {
    const int w = p->width(j);
    uint8_t* dst = reinterpret_cast<uint8_t*>(p->panel(j));
    std::memset(dst, 0, static_cast<size_t>(p->rows * w * 4));
    float* s = p->sm.get() + j * 2 * ng * kPanel;
    float* m = s + ng * kPanel;
    for (int c = 0; c < w && j * kPanel + c < N; ++c) {
      const int64_t n = j * kPanel + c;
      const uint8_t* src = q + n * ldq;
      for (int64_t g = 0; g < ng; ++g) {
        const float sc = scales[n * ng + g];
        const float z = bits == 4 ? static_cast<float>(zeros ? zeros[n * ng + g] : 8) : 0.0f;
        s[g * kPanel + c] = sc;
        m[g * kPanel + c] = -(z * sc);
      }
      if (bits == 8) {
        for (int64_t k = 0; k < K; ++k) dst[k * w + c] = src[k];
      } else {
        const int h = c / 16, hi = (c % 16) >= 8;
        for (int64_t k = 0; k < K; ++k) {
          const uint8_t v = (k & 1) ? (src[k / 2] >> 4) : (src[k / 2] & 15);
          dst[k * (w / 2) + 8 * h + (c % 8)] |= static_cast<uint8_t>(hi ? v << 4 : v);
        }
      }
    }
  }
  return p;
}

void gemm_wo_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedWo& b, float* c, int64_t ldc,
                    const Epilogue& ep) {
  LG_CHECK(K == b.K, K, "is ", K, " but the packed B has K = ", b.K);
  detail::check_a_c(a, M, K, lda, c, b.N, ldc);
  detail::check_epilogue(ep, M, b.N);
  WoKernel kn(a, lda, b, c, ldc, ep);
  const double flops = 2.0 * double(M) * double(b.N) * double(std::max<int64_t>(K, 1));
  detail::run_gemm(kn, M, std::max(flops / 1.0e11, double(packed_wo_nbytes(b)) / 4.0e10), true);
}

}  // namespace lg::gemm
