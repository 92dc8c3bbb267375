// int8 GEMM (portable code; see gemm_int8.h): packing, row quantisation, the precision's kernel for the one blocked
// driver (gemm_driver.h), ISA dispatch, and the portable kernels.
//
// On the driver's blocking: for each block of rows, the rows are quantised (min/max, then u8) and packed into
// mr-row tiles of 4-byte k groups; then for every B panel the micro-kernel runs over the tiles, the whole K at once
// (int32 accumulators stay in registers: no partial sums in memory), and dequantises with the epilogue.
#include "kernels/gemm_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "kernels/gemm_driver.h"

namespace lg::gemm {

using detail::DequantTile;
using detail::IsaKernelsS8;
using detail::kPanel;
using detail::TileEpi;

// Panels of ceil(K / 4) words per column (k-groups of 4 bytes), plus per-column sums and scales.
struct PackedS8 : detail::Panels {
  std::vector<int32_t> colsum;  // N (+ padding to a whole panel)
  std::vector<float> scales;    // N (+ padding)
  bool has_min = false;         // some B8 is -128: the shifted-row kernels (which negate B8) cannot take it
};

int64_t packed_s8_k(const PackedS8& p) { return p.K; }
int64_t packed_s8_n(const PackedS8& p) { return p.N; }
int64_t packed_s8_nbytes(const PackedS8& p) { return p.nbytes() + static_cast<int64_t>(8 * p.colsum.size()); }

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
  if (isa == Isa::avx512 && avx512_vnni_active()) return detail::kernels_s8_avx512vnni();
#endif  // AVX-512 without VNNI (Skylake-SP): the AVX2 kernels, which need nothing more
#if LG_HAVE_AVX2_KERNELS
  if (isa >= Isa::avx2) return detail::kernels_s8_avx2();
#endif
  (void)isa;
  return scalar_kernels_s8();
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

// Rows per block: the block's packed A (rows x K bytes) stays in L2 while every panel of the thread passes over it:
// half of L2, at most 256 KiB (the size measured on Zen 4; Zen 3's half L2 is that too).
int64_t block_rows(int64_t K, int max_mr) {
  const int64_t bytes = std::min<int64_t>(cache_sizes().l2 / 2, int64_t(256) << 10);
  const int64_t rows = std::max<int64_t>(max_mr, bytes / std::max<int64_t>(K, 1));
  return std::min<int64_t>(rows / max_mr * max_mr, 1024);
}

// Output pixel r's window of an implicit-GEMM conv (see ConvRowsU8), as runs of consecutive k of A row r: calls
// put(k, src, bytes) for each run, src null for taps in the padding (they read the image's zero point). A window
// row is one run when it lies inside the image and is contiguous (dilation_w 1), else one run per tap.
template <class Put>
void conv_window(const ConvRowsU8& a, int64_t r, const Put& put) {
  const int64_t pixels = a.OH * a.OW;
  const int64_t n = r / pixels, p = r % pixels;
  const int64_t oh = p / a.OW, ow = p % a.OW;
  const uint8_t* img = a.x + n * a.H * a.W * a.C;
  const int64_t ih0 = oh * a.stride_h - a.pad_top, iw0 = ow * a.stride_w - a.pad_left;
  const bool one_run = a.dilation_w == 1 && iw0 >= 0 && iw0 + a.KW <= a.W;
  for (int64_t kh = 0; kh < a.KH; ++kh) {
    const int64_t k = kh * a.KW * a.C, ih = ih0 + kh * a.dilation_h;
    if (ih < 0 || ih >= a.H) {
      put(k, nullptr, a.KW * a.C);
      continue;
    }
    const uint8_t* src = img + ih * a.W * a.C;
    if (one_run) {
      put(k, src + iw0 * a.C, a.KW * a.C);
      continue;
    }
    for (int64_t kw = 0; kw < a.KW; ++kw) {
      const int64_t iw = iw0 + kw * a.dilation_w;
      put(k + kw * a.C, iw < 0 || iw >= a.W ? nullptr : src + iw * a.C, a.C);
    }
  }
}

// Words [0, n) of src, XORed with mask, to dst[0], dst[stride], ... (a packed A tile's column of 4-byte k groups).
inline void store_words(const uint8_t* src, int64_t n, uint32_t mask, uint32_t* dst, int64_t stride) {
  for (int64_t w = 0; w < n; ++w) {
    uint32_t word;
    std::memcpy(&word, src + 4 * w, 4);
    dst[w * stride] = word ^ mask;
  }
}

// u8 x s8 operands for the driver: A rows quantised at packing (f32 `a`, dynamic) or given (u8 `a8`, raw int32
// output to c32); the whole K per tile, dequantised in the micro-kernel with the epilogue.
struct S8Kernel {
  detail::PanelView b;
  int max_mr = 1;
  const PackedS8* packed;
  const float* a = nullptr;
  const uint8_t* a8 = nullptr;
  int64_t lda = 0;
  float* c = nullptr;
  int32_t* c32 = nullptr;
  int64_t ldc = 0;
  const Epilogue* ep = nullptr;
  bool epi = false;
  IsaKernelsS8 ks;
  bool fixed = false;  // static quantisation: every row with fixed_scale / fixed_z (else per-row min/max)
  float fixed_scale = 1.0f, fixed_inv = 1.0f;
  int32_t fixed_z = 0;
  const ConvRowsU8* conv = nullptr;  // implicit-GEMM conv rows (a u8 image batch, per-image scale and zero point)
  bool shifted = false;  // quantised rows packed as q - 128 with zero points z - 128, for ks.micro_shifted
  int64_t block_row0 = 0;  // the first row of the block last packed (its rows' s and z are in the scratch)

  S8Kernel(const PackedS8& p, IsaKernelsS8 k) : b(p.view()), max_mr(k.max_mr), packed(&p), ks(k) {}

  int64_t kc_max() const { return b.rows; }
  int64_t a_words(int64_t kc) const { return kc; }
  int64_t mc_max(int64_t) const { return block_rows(packed->K, max_mr); }

  bool direct(int64_t m0, int64_t m1, int64_t j0, int64_t j1) {  // K == 0: C = epilogue(0)
    if (packed->K != 0) return false;
    const int64_t n0 = j0 * kPanel, n = std::min<int64_t>(j1 * kPanel, b.N) - n0;
    for (int64_t i = m0; i < m1; ++i) {
      if (c32) std::fill(c32 + i * ldc + n0, c32 + i * ldc + n0 + n, 0);
      else std::fill(c + i * ldc + n0, c + i * ldc + n0 + n, 0.0f);
    }
    const TileEpi te = epi ? detail::tile_epi(*ep, m0, n0) : TileEpi{};
    if (c && epi) ks.epilogue(c + m0 * ldc + n0, ldc, static_cast<int>(m1 - m0), n, &te);
    return true;
  }

  struct Scratch {
    detail::Scratch tiles;     // packed A rows of one block
    std::vector<uint8_t> row;  // one quantised row (zero past K)
    std::vector<float> s;
    std::vector<int32_t> z;
  };

  static Scratch& thread_scratch() {
    static thread_local Scratch sc;
    return sc;
  }

  const uint32_t* pack(int64_t ic, int64_t mc, int64_t, int64_t G, int tile_mr) {
    Scratch& sc = thread_scratch();  // one TLS lookup: the loops below use plain pointers
    const int64_t K = packed->K;
    uint32_t* tiles = sc.tiles.get(mc * G);
    sc.row.assign(static_cast<size_t>(G * 4), 0);
    sc.s.resize(static_cast<size_t>(mc));
    sc.z.resize(static_cast<size_t>(mc));
    uint8_t* row = sc.row.data();
    float* s = sc.s.data();
    int32_t* z = sc.z.data();
    // q - 128 as s8 is the byte q ^ 0x80 (the padding past K multiplies zeros of B either way)
    const uint32_t mask = shifted ? 0x80808080u : 0u;
    const bool conv_words = conv != nullptr && conv->C % 4 == 0;
    for (int64_t t0 = 0; t0 < mc; t0 += tile_mr) {
      const int mr = static_cast<int>(std::min<int64_t>(tile_mr, mc - t0));
      uint32_t* tile = tiles + t0 * G;
      for (int i = 0; i < mr; ++i) {
        const int64_t r = ic + t0 + i;
        if (conv) {
          const int64_t n = r / (conv->OH * conv->OW);
          const auto zn = static_cast<uint8_t>(conv->zero[n]);
          s[t0 + i] = conv->scale[n];
          z[t0 + i] = conv->zero[n] - (shifted ? 128 : 0);
          if (conv_words) {  // C % 4 == 0: every run is whole words, stored straight into the tile
            const uint32_t zword = (uint32_t(zn) * 0x01010101u) ^ mask;
            conv_window(*conv, r, [&](int64_t k, const uint8_t* src, int64_t bytes) {
              uint32_t* dst = tile + (k / 4) * mr + i;
              if (src) store_words(src, bytes / 4, mask, dst, mr);
              else for (int64_t w = 0; w < bytes / 4; ++w) dst[w * mr] = zword;
            });
            continue;
          }
          conv_window(*conv, r, [&](int64_t k, const uint8_t* src, int64_t bytes) {
            if (src) std::memcpy(row + k, src, static_cast<size_t>(bytes));
            else std::memset(row + k, zn, static_cast<size_t>(bytes));
          });
        } else if (a8) {
          std::memcpy(row, a8 + r * lda, static_cast<size_t>(K));
        } else if (fixed) {
          s[t0 + i] = fixed_scale;
          z[t0 + i] = fixed_z;
          ks.quant(a + r * lda, K, fixed_inv, fixed_z, row);
        } else {
          float mn, mx, inv;
          ks.minmax(a + r * lda, K, &mn, &mx);
          row_qparams(mn, mx, &s[t0 + i], &inv, &z[t0 + i]);
          ks.quant(a + r * lda, K, inv, z[t0 + i], row);
        }
        if (shifted && !conv) z[t0 + i] -= 128;
        store_words(row, G, mask, tile + i, mr);
      }
    }
    block_row0 = ic;
    scratch = &sc;
    return tiles;
  }
  Scratch* scratch = nullptr;

  void tile(const uint32_t* ap, const uint32_t* bp, int w, int64_t i, int64_t n0, int mr, int nr, int64_t G, bool,
            bool, const char*, int64_t) const {  // the whole K per tile; no prefetch hint taken yet
    const auto* b8 = reinterpret_cast<const int8_t*>(bp);
    if (c32) {
      ks.micro(G, ap, b8, w, mr, nr, nullptr, nullptr, ldc, nullptr, c32 + i * ldc + n0);
      return;
    }
    const int64_t r = i - block_row0;
    const DequantTile dq{scratch->z.data() + r, scratch->s.data() + r, packed->colsum.data() + n0,
                         packed->scales.data() + n0};
    const TileEpi te = epi ? detail::tile_epi(*ep, i, n0) : TileEpi{};
    (shifted ? ks.micro_shifted : ks.micro)(G, ap, b8, w, mr, nr, &dq, c + i * ldc + n0, ldc, epi ? &te : nullptr,
                                            nullptr);
  }
};

// 2 int-ops per multiply-add; VNNI runs ~4x the fp32 FMA rate (4e11 op/s per thread), B streamed at 40 GB/s.
void run(S8Kernel& kn, int64_t M) {
  const double ops = 2.0 * double(M) * double(kn.b.N) * double(kn.packed->K);
  detail::run_gemm(kn, M, std::max(ops / 4.0e11, double(kn.packed->K) * double(kn.b.N) / 4.0e10), true);
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
  p->allocate(K, N, (K + 3) / 4, true);
  const int64_t padded_n = p->n_panels * kPanel;
  std::memset(p->data.get(), 0, static_cast<size_t>(p->n_panels * p->rows * kPanel) * 4);
  p->colsum.assign(static_cast<size_t>(padded_n), 0);
  p->scales.assign(static_cast<size_t>(padded_n), 0.0f);
  for (int64_t j = 0; j < p->n_panels; ++j) {
    const int w = p->width(j);
    auto* dst = reinterpret_cast<int8_t*>(p->panel(j));
    for (int c = 0; c < w && j * kPanel + c < N; ++c) {
      const int64_t n = j * kPanel + c;
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int8_t v = b[k * stride_k + n * stride_n];
        dst[(k / 4) * w * 4 + c * 4 + k % 4] = v;
        sum += v;
        p->has_min |= v == -128;
      }
      p->colsum[static_cast<size_t>(n)] = sum;
      p->scales[static_cast<size_t>(n)] = scales[n];
    }
  }
  return p;
}

namespace {

// The GEMMs with a dequantised fp32 output: the kernel set-up they share (shifted rows where the ISA has them).
S8Kernel dequant_kernel(const PackedS8& b, float* c, int64_t ldc, const Epilogue& ep) {
  S8Kernel kn(b, isa_kernels_s8());
  kn.c = c;
  kn.ldc = ldc;
  kn.ep = &ep;
  kn.epi = detail::has_epilogue(ep);
  kn.shifted = kn.ks.micro_shifted != nullptr && !b.has_min;
  if (kn.shifted) kn.max_mr = kn.ks.max_mr_shifted;
  return kn;
}

// The float-A GEMMs (dynamic and static quantisation of A): their shared checks and kernel set-up.
S8Kernel float_a_kernel(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float* c, int64_t ldc,
                        const Epilogue& ep) {
  check_problem(M, K, lda, b, ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || b.N == 0 || c != nullptr, c, "is null");
  S8Kernel kn = dequant_kernel(b, c, ldc, ep);
  kn.a = a;
  kn.lda = lda;
  return kn;
}

}  // namespace

void gemm_u8s8_dynamic(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float* c, int64_t ldc,
                       const Epilogue& ep) {
  S8Kernel kn = float_a_kernel(a, M, K, lda, b, c, ldc, ep);
  run(kn, M);
}

void gemm_u8s8_static(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float scale,
                      int32_t zero_point, float* c, int64_t ldc, const Epilogue& ep) {
  S8Kernel kn = float_a_kernel(a, M, K, lda, b, c, ldc, ep);
  LG_CHECK(scale > 0.0f && std::isfinite(scale), scale, "must be a finite number > 0, got ", scale);
  LG_CHECK(zero_point >= 0 && zero_point <= 255, zero_point, "must be in [0, 255], got ", zero_point);
  kn.fixed = true;
  kn.fixed_scale = scale;
  kn.fixed_inv = 1.0f / scale;
  kn.fixed_z = zero_point;
  run(kn, M);
}

void gemm_u8s8s32(const uint8_t* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, int32_t* c, int64_t ldc) {
  check_problem(M, K, lda, b, ldc);
  LG_CHECK(M == 0 || K == 0 || a != nullptr, a, "is null");
  LG_CHECK(M == 0 || b.N == 0 || c != nullptr, c, "is null");
  S8Kernel kn(b, isa_kernels_s8());
  kn.a8 = a;
  kn.lda = lda;
  kn.c32 = c;
  kn.ldc = ldc;
  run(kn, M);
}

void gemm_u8s8_conv(const ConvRowsU8& a, const PackedS8& b, float* c, int64_t ldc, const Epilogue& ep) {
  LG_CHECK(a.N >= 0 && a.H >= 0 && a.W >= 0 && a.C >= 0 && a.OH >= 0 && a.OW >= 0, a,
           "sizes must be >= 0");
  LG_CHECK(a.KH >= 1 && a.KW >= 1 && a.stride_h >= 1 && a.stride_w >= 1 && a.dilation_h >= 1 && a.dilation_w >= 1,
           a, "kernel, stride and dilation must be >= 1");
  const int64_t K = a.KH * a.KW * a.C, M = a.N * a.OH * a.OW;
  LG_CHECK(K == b.K, K, "(KH * KW * C) must equal the packed B's K = ", b.K, ", got ", K);
  LG_CHECK(M <= 1 || ldc >= b.N, ldc, "must be >= N = ", b.N, ", got ", ldc);
  LG_CHECK(M == 0 || K == 0 || (a.x != nullptr && a.scale != nullptr && a.zero != nullptr), a, "has a null buffer");
  LG_CHECK(M == 0 || b.N == 0 || c != nullptr, c, "is null");
  S8Kernel kn = dequant_kernel(b, c, ldc, ep);
  kn.conv = &a;
  run(kn, M);
}

void range_f32(const float* a, int64_t K, float* mn, float* mx) { isa_kernels_s8().minmax(a, K, mn, mx); }

void quantize_u8(const float* a, int64_t K, float scale, int32_t zero_point, uint8_t* q) {
  isa_kernels_s8().quant(a, K, 1.0f / scale, zero_point, q);
}

void u8_qparams(float mn, float mx, float* scale, int32_t* zero_point) {
  float inv;
  row_qparams(mn, mx, scale, &inv, zero_point);
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
